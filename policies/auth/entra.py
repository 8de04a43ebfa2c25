"""Microsoft Entra ID access tokens: validated with PyJWT (RS256 only, keys from
the tenant's JWKS by `kid`), then mapped to a consumer by object id, app id,
group or role. Never by name, upn or preferred_username: those are not unique
and some can be edited by the user."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from policies.base import Caller
from policies.errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    import jwt

log = logging.getLogger("policies.auth.entra")

DEFAULT_AUDIENCE = "https://cognitiveservices.azure.com"
MAX_TOKEN_BYTES = 16 * 1024
FetchJson = Callable[[str], Awaitable[Any]]


class EntraConfig(BaseModel):
    """auth.entra: which tokens are accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tenant_ids: tuple[str, ...] = Field(min_length=1)
    audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)
    # Default: https://login.microsoftonline.com/{tid}/discovery/v2.0/keys per tenant.
    jwks_url: str | None = None
    leeway_seconds: float = Field(60.0, ge=0, le=300)
    # An unknown `kid` refreshes the key set at most this often, so that a flood of
    # forged tokens cannot hammer the JWKS endpoint.
    jwks_refresh_seconds: float = Field(60.0, ge=0)


class EntraMatch(BaseModel):
    """consumers[].entra: who this consumer is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    object_ids: tuple[str, ...] = ()
    app_ids: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def matches(self, claims: Mapping[str, Any]) -> bool:
        app = claims.get("appid") or claims.get("azp")
        return bool(
            (claims.get("oid") in self.object_ids)
            or (app in self.app_ids)
            or set(self.groups).intersection(_strings(claims.get("groups")))
            or set(self.roles).intersection(_strings(claims.get("roles")))
        )


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def looks_like_jwt(value: str) -> bool:
    return value.startswith("eyJ") and value.count(".") == 2


class KeySet:
    """One JWKS document, cached; refreshed on an unknown kid, at most once per interval."""

    def __init__(self, url: str, fetch: FetchJson, refresh_s: float) -> None:
        self.url, self._fetch, self._refresh_s = url, fetch, refresh_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -1e9
        self._loading: asyncio.Task[None] | None = None
        self.fetches = 0

    async def key(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._fetched_at >= self._refresh_s:
            if self._loading is None:
                self._loading = asyncio.get_running_loop().create_task(self._load())
            await asyncio.shield(self._loading)
            key = self._keys.get(kid)
        return key

    async def _load(self) -> None:
        import jwt  # PyJWT and cryptography cost ~11 MB: loaded only when Entra is used

        try:
            self.fetches += 1
            self._fetched_at = time.monotonic()
            document = await self._fetch(self.url)
            keys: dict[str, jwt.PyJWK] = {}
            for jwk in document.get("keys", []) if isinstance(document, dict) else []:
                if jwk.get("kty") == "RSA" and jwk.get("kid") and jwk.get("use", "sig") == "sig":
                    try:
                        keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256")
                    except jwt.PyJWKError:
                        continue
            self._keys = keys
        except Exception as exc:
            log.warning("could not load JWKS from %s: %r", self.url, exc)
        finally:
            self._loading = None


def _invalid(reason: str) -> Unauthenticated:
    return Unauthenticated(
        f"Unauthorized. Access token is missing, invalid, audience is incorrect, or has "
        f"expired: {reason}.",
        code="invalid_token",
    )


class EntraValidator:
    def __init__(self, config: EntraConfig, fetch: FetchJson) -> None:
        self.config = config
        self._fetch = fetch
        self._keysets: dict[str, KeySet] = {}
        audiences: list[str] = []
        for aud in config.audiences:
            audiences += [aud.rstrip("/"), aud.rstrip("/") + "/"]
        self._audiences = audiences

    def keyset(self, tenant: str) -> KeySet:
        url = self.config.jwks_url or f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"
        keyset = self._keysets.get(url)
        if keyset is None:
            keyset = self._keysets[url] = KeySet(url, self._fetch, self.config.jwks_refresh_seconds)
        return keyset

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of `token`, or Unauthenticated saying what is wrong."""
        import jwt

        if len(token) > MAX_TOKEN_BYTES:
            raise _invalid("the token is too large")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid("the token is not a well-formed JWT") from None
        if header.get("alg") != "RS256":
            raise _invalid(f"algorithm {header.get('alg')!r} is not accepted (RS256 only)")
        tenant = unverified.get("tid")
        if not isinstance(tenant, str) or tenant not in self.config.tenant_ids:
            raise _invalid("the token's tenant is not accepted here")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _invalid("the token names no signing key (kid)")
        key = await self.keyset(tenant).key(kid)
        if key is None:
            raise _invalid("the token's signing key is unknown")
        issuers = [f"https://sts.windows.net/{tenant}/",
                   f"https://login.microsoftonline.com/{tenant}/v2.0"]
        try:
            return jwt.decode(
                token, key, algorithms=["RS256"], audience=self._audiences, issuer=issuers,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise _invalid("the token's audience is not accepted here") from None
        except jwt.InvalidIssuerError:
            raise _invalid("the token's issuer is not accepted here") from None
        except jwt.InvalidSignatureError:
            raise _invalid("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise _invalid(f"the token is invalid ({type(exc).__name__})") from None


def identity_of(claims: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What may be logged about an Entra caller: object id and app id."""
    out = []
    if isinstance(claims.get("oid"), str):
        out.append(("oid", claims["oid"]))
    app = claims.get("appid") or claims.get("azp")
    if isinstance(app, str):
        out.append(("appid", app))
    return tuple(out)


def match_consumer(
    claims: Mapping[str, Any], consumers: Sequence[tuple[EntraMatch, Caller]]
) -> Caller:
    """The first consumer (in config order) whose entra block matches; else 403."""
    identity = identity_of(claims)
    for match, caller in consumers:
        if match.matches(claims):
            return Caller(caller.consumer, caller.deployments, identity)
    who = ", ".join(f"{k} {v}" for k, v in identity) or "this caller"
    raise PermissionDenied(
        f"The token is valid, but {who} is not allowed to use this gateway. Ask its "
        "operator to map your object id or app id to a consumer."
    )
