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


class CountingCredential:
    def __init__(self, lifetime: float) -> None:
        self.lifetime, self.calls, self.fail = lifetime, 0, False

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        await asyncio.sleep(0.05)
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
    started = time.perf_counter()
    assert await provider.token() == "t1"  # still valid: served at once ...
    assert time.perf_counter() - started < 0.04
    await asyncio.sleep(0.1)  # ... while a refresh runs in the background
    assert credential.calls == 2 and await provider.token() == "t2"


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
