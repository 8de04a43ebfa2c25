"""Upstream Entra ID credentials: one azure.identity.aio credential per distinct
setting, tokens cached and refreshed ahead of expiry, at most one fetch in flight."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.core.errors import UpstreamAuthFailed
from gateway.ops.metrics import METRICS
from policies.service_auth import EntraAuth

if TYPE_CHECKING:
    # azure-identity costs ~20 MB of memory: imported only when a backend uses Entra.
    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential

log = logging.getLogger("gateway.upstream.credentials")

# Refresh this long before expiry (at most half the token's life), in the
# background, while the old token still works.
REFRESH_MARGIN_S = 300.0
# A token this close to expiry is not handed out at all.
MIN_VALIDITY_S = 5.0


class TokenProvider:
    def __init__(self, make: Callable[[], AsyncTokenCredential], scope: str) -> None:
        self._make = make
        self._credential = make()
        self._stale: list[AsyncTokenCredential] = []
        self._scope = scope
        self._token: AccessToken | None = None
        self._refresh_at = 0.0
        self._fetching: asyncio.Task[AccessToken] | None = None
        self.fetches = 0
        self.failures = 0

    async def token(self) -> str:
        token = self._token
        if token is not None:
            now = time.time()
            if now < self._refresh_at:
                return token.token
            if token.expires_on - now > MIN_VALIDITY_S:
                self._start_fetch()  # refresh ahead; this request keeps the current token
                return token.token
        task = self._start_fetch()
        try:
            # shield: one caller giving up must not cancel the fetch the others await.
            return (await asyncio.shield(task)).token
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise UpstreamAuthFailed(
                f"Could not obtain an Entra ID token for {self._scope}: {type(exc).__name__}. "
                "The upstream call was not made."
            ) from exc

    def invalidate(self) -> None:
        """Forget the cached token (the upstream rejected it). azure-identity keeps a
        token cache of its own, so the credential object is replaced too."""
        self._token = None
        self._stale.append(self._credential)
        self._credential = self._make()

    async def close(self) -> None:
        for credential in (*self._stale, self._credential):
            await credential.close()
        self._stale.clear()

    def _start_fetch(self) -> asyncio.Task[AccessToken]:
        if self._fetching is None:
            self._fetching = asyncio.get_running_loop().create_task(self._fetch())
        return self._fetching

    async def _fetch(self) -> AccessToken:
        try:
            self.fetches += 1
            while self._stale:
                await self._stale.pop().close()
            token = await self._credential.get_token(self._scope)
            now = time.time()
            life = token.expires_on - now
            self._refresh_at = now + life - min(REFRESH_MARGIN_S, life / 2)
            self._token = token
            return token
        except Exception as exc:
            self.failures += 1
            log.warning("token fetch for %s failed: %s", self._scope, type(exc).__name__)
            raise
        finally:
            self._fetching = None


def _make_credential(auth: EntraAuth) -> AsyncTokenCredential:
    from azure.identity.aio import (
        DefaultAzureCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    if auth.credential == "managed-identity":
        return ManagedIdentityCredential(client_id=auth.client_id)
    if auth.credential == "workload-identity":
        return WorkloadIdentityCredential(client_id=auth.client_id, tenant_id=auth.tenant_id)
    return DefaultAzureCredential(
        managed_identity_client_id=auth.client_id,
        workload_identity_client_id=auth.client_id,
        workload_identity_tenant_id=auth.tenant_id,
    )


class CredentialUnavailable(Exception):
    """An Entra credential cannot even be built here (its environment is missing)."""


class Credentials:
    """All upstream credentials of one app, one per distinct setting; outlives config
    reloads so that tokens stay cached."""

    def __init__(self) -> None:
        self._providers: dict[tuple[str, str | None, str | None, str], TokenProvider] = {}

    def provider(self, auth: EntraAuth, where: str) -> TokenProvider:
        key = (auth.credential, auth.client_id, auth.tenant_id, auth.scope)
        provider = self._providers.get(key)
        if provider is None:
            try:
                provider = TokenProvider(lambda: _make_credential(auth), auth.scope)
            except ValueError as exc:
                hint = ("; it needs AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE "
                        "(the workload identity webhook sets them on labelled pods)"
                        if auth.credential == "workload-identity" else "")
                raise CredentialUnavailable(
                    f"{where}: {auth.credential} credential: {exc}{hint}") from None
            self._providers[key] = provider
        return provider

    def stats(self) -> list[tuple[str, int, int]]:
        """(credential label, fetches, failures) per token provider, for /metrics."""
        out = []
        for (kind, client_id, _tenant, scope), provider in self._providers.items():
            label = f"{kind}:{client_id}" if client_id else kind
            out.append((f"{label} {scope}", provider.fetches, provider.failures))
        return out

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
        self._providers.clear()


CREDENTIALS = web.AppKey("credentials", Credentials)


async def credentials_ctx(app: web.Application) -> AsyncIterator[None]:
    """The app's credentials, one per setting (their token caches outlive reloads)."""
    app[CREDENTIALS] = credentials = Credentials()
    app[METRICS].token_fetches = credentials.stats
    yield
    await credentials.close()
