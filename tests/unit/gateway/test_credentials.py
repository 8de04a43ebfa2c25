"""TokenProvider against a stand-in for azure-identity (the real credential is
exercised end to end in tests/integration/test_entra_upstream.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from gateway.core.errors import UpstreamAuthFailed
from gateway.upstream.credentials import TokenProvider
from tests.waiting import until


async def serves(provider: TokenProvider, token: str) -> bool:
    return await provider.token() == token


class CountingCredential:
    def __init__(self, lifetime: float) -> None:
        self.lifetime, self.calls, self.fail = lifetime, 0, False
        self.gate: asyncio.Event | None = None  # when set up: each fetch waits for it

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(0.05)  # slow enough for concurrent callers to overlap
        if self.fail:
            raise RuntimeError("token service down")
        return AccessToken(f"t{self.calls}", int(time.time() + self.lifetime))

    async def close(self) -> None:
        pass


async def test_concurrent_callers_share_one_fetch() -> None:
    credential = CountingCredential(3600)
    provider = TokenProvider(lambda: credential, "scope")  # type: ignore[arg-type,return-value]
    tokens = await asyncio.gather(*(provider.token() for _ in range(100)))
    assert set(tokens) == {"t1"} and credential.calls == 1


async def test_refreshes_ahead_of_expiry_without_waiting() -> None:
    # A 10 s token is refreshed once half its life is gone.
    credential = CountingCredential(10)
    provider = TokenProvider(lambda: credential, "scope")  # type: ignore[arg-type,return-value]
    assert await provider.token() == "t1"
    assert await provider.token() == "t1" and credential.calls == 1
    provider._refresh_at = time.time() - 1  # half its life is gone
    credential.gate = asyncio.Event()  # the token service answers only when told
    assert await provider.token() == "t1"  # still valid: served at once ...
    await until(lambda: credential.calls == 2, what="the refresh started")
    assert await provider.token() == "t1"  # ... and while the refresh waits, too
    credential.gate.set()
    await until(lambda: serves(provider, "t2"), what="the refreshed token served")
    assert credential.calls == 2


async def test_failure_is_upstream_auth_failed_then_recovers() -> None:
    credential = CountingCredential(3600)
    credential.fail = True
    provider = TokenProvider(lambda: credential, "scope")  # type: ignore[arg-type,return-value]
    with pytest.raises(UpstreamAuthFailed):
        await provider.token()
    credential.fail = False
    assert await provider.token() == "t2"
    provider.invalidate()
    assert await provider.token() == "t3"
