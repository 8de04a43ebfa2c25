"""Turns the request's credential headers into a `Caller`, or raises `Unauthenticated`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policies.auth.api_keys import KeyRing, RuntimeKey
from policies.auth.consumers import ConsumerConfig
from policies.auth.entra import EntraMatch, EntraValidator, looks_like_jwt, match_consumer
from policies.base import ANONYMOUS, Caller
from policies.errors import Unauthenticated

MISSING = (
    "Access denied due to a missing credential. Send your key in the 'api-key' header "
    "or as 'Authorization: Bearer <key>'."
)
INVALID = "Access denied due to an invalid API key. Check the key this gateway issued to you."


# Where a key may come: `api-key` (Azure clients, Anthropic's Foundry client) and
# `x-api-key` (the anthropic SDK), or `Authorization: Bearer`.
CREDENTIAL_HEADERS = ("api-key", "x-api-key")


def presented_credentials(headers: Mapping[str, str]) -> list[str]:
    """The distinct credential values a request carries, `api-key` first.

    azure-ai-inference sends the same key in both headers; other clients send one.
    """
    found: list[str] = []
    for name in CREDENTIAL_HEADERS:
        key = headers.get(name)
        if key:
            key = key.strip()
            if key and key not in found:
                found.append(key)
    auth = headers.get("Authorization")
    if auth and auth[:7].lower() == "bearer ":
        bearer = auth[7:].strip()
        if bearer and bearer not in found:
            found.append(bearer)
    return found


class Authenticator:
    def __init__(
        self,
        consumers: Sequence[ConsumerConfig],
        *,
        allow_anonymous: bool,
        entra: EntraValidator | None = None,
        runtime_keys: Sequence[RuntimeKey] = (),
    ) -> None:
        self.allow_anonymous = allow_anonymous
        self.entra = entra
        self._callers: dict[str, Caller] = {}
        self._entra_callers: list[tuple[EntraMatch, Caller]] = []
        digests: dict[str, str] = {}
        for consumer in consumers:
            allowed = None if consumer.all_deployments else frozenset(consumer.deployments)
            self._callers[consumer.name] = Caller(consumer.name, allowed)
            for digest in consumer.api_keys:
                digests[digest] = consumer.name
            if consumer.entra is not None:
                self._entra_callers.append((consumer.entra, self._callers[consumer.name]))
        self._keys = KeyRing(digests, [k for k in runtime_keys if k.consumer in self._callers])
        self._anonymous = Caller(ANONYMOUS, None)

    async def authenticate(self, headers: Mapping[str, str],
                           credentials: list[str] | None = None) -> Caller:
        """`credentials`: `presented_credentials(headers)`, when the caller has them."""
        if credentials is None:
            credentials = presented_credentials(headers)
        joined = "".join(credentials)
        if not (joined.isascii() and joined.isprintable()):
            # Keys and tokens are printable ASCII; header bytes that are not cannot match.
            raise Unauthenticated(INVALID)
        for credential in credentials:
            owner = self._keys.lookup(credential)
            if owner is not None:
                return self._callers[owner]
        if self.entra is not None:
            token = next((c for c in credentials if looks_like_jwt(c)), None)
            if token is not None:
                claims = await self.entra.claims(token)
                return match_consumer(claims, self._entra_callers)
        if self.allow_anonymous:
            # A sidecar's application still has to hand its SDK some key; whatever
            # it sends is not a credential here.
            return self._anonymous
        raise Unauthenticated(INVALID if credentials else MISSING)
