"""Upstream Entra auth with the real azure-identity ManagedIdentityCredential
against a local fake token endpoint (App Service style IDENTITY_ENDPOINT)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.simulator import SimulatorSettings
from tests.conftest import KEY_A, Stack, default_config, serve_in_thread

IDENTITY_HEADER = "identity-header-secret"


class FakeTokenService:
    def __init__(self) -> None:
        self.fetches = 0
        self.failing = False
        self.seen: list[dict[str, str]] = []

    async def token(self, request: web.Request) -> web.Response:
        self.fetches += 1
        self.seen.append({"resource": request.query.get("resource", ""),
                          "api-version": request.query.get("api-version", ""),
                          "header": request.headers.get("X-IDENTITY-HEADER", "")})
        await asyncio.sleep(0.1)  # slow enough that concurrent callers overlap
        if self.failing:
            return web.json_response({"error": "invalid_request", "error_description": "down"},
                                     status=400)
        return web.json_response({
            "access_token": f"mi-token-{self.fetches}",
            "expires_on": str(int(time.time()) + 3600),
            "resource": request.query["resource"],
            "token_type": "Bearer",
        })


@pytest.fixture
def token_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTokenService]:
    service = FakeTokenService()
    app = web.Application()
    app.router.add_get("/msi/token", service.token)
    with serve_in_thread(app) as url:
        monkeypatch.setenv("IDENTITY_ENDPOINT", url + "/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
        yield service


def entra_config(sim: str, credential: str = "managed-identity") -> dict[str, Any]:
    config = default_config(sim)
    config["deployments"][0]["backends"][0]["auth"] = {"type": "entra", "credential": credential}
    return config


async def chat(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.post(url + "/v1/chat/completions", headers={"api-key": KEY_A},
                            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]}
                            ) as r:
        return r.status, await r.json()


@pytest.mark.parametrize("credential", ["managed-identity", "default"])
async def test_one_token_fetch_for_fifty_concurrent_requests(
    make_stack: Any, token_service: FakeTokenService, credential: str
) -> None:
    # DefaultAzureCredential finds the managed identity through the same environment.
    stack: Stack = make_stack(lambda sim: entra_config(sim, credential),
                              SimulatorSettings(accept=("mi-token-1",)))
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(chat(session, stack.url) for _ in range(50)))
    assert [status for status, _ in results] == [200] * 50
    assert token_service.fetches == 1
    assert token_service.seen[0] == {"resource": "https://cognitiveservices.azure.com",
                                     "api-version": "2019-08-01", "header": IDENTITY_HEADER}
    assert {r.authorization for r in stack.sim.records} == {"Bearer mi-token-1"}
    assert {r.api_key for r in stack.sim.records} == {None}


async def test_token_service_failure_is_503_and_recovers(
    make_stack: Any, token_service: FakeTokenService
) -> None:
    stack: Stack = make_stack(entra_config, SimulatorSettings(accept=("mi-token-2",)))
    token_service.failing = True
    async with aiohttp.ClientSession() as session:
        status, body = await chat(session, stack.url)
        assert status == 503
        assert body["error"]["code"] == "upstream_auth_failed"
        assert stack.sim.count == 0
        token_service.failing = False
        status, _ = await chat(session, stack.url)
        assert status == 200
    assert stack.sim.records[-1].authorization == "Bearer mi-token-2"


async def test_upstream_401_refreshes_the_token_and_retries_once(
    make_stack: Any, token_service: FakeTokenService
) -> None:
    # The simulator accepts only the second token: the first is "revoked".
    stack: Stack = make_stack(entra_config, SimulatorSettings(accept=("mi-token-2",)))
    async with aiohttp.ClientSession() as session:
        status, _ = await chat(session, stack.url)
        async with session.get(stack.url + "/metrics") as r:
            metrics = await r.text()
    assert status == 200
    assert token_service.fetches == 2
    assert [r.authorization for r in stack.sim.records] == ["Bearer mi-token-1", "Bearer mi-token-2"]
    assert 'gateway_upstream_token_fetches_total{credential="managed-identity' in metrics
    assert 'result="ok"} 2.0' in metrics


async def test_a_token_refused_twice_is_not_retried_forever(
    make_stack: Any, token_service: FakeTokenService
) -> None:
    stack: Stack = make_stack(entra_config, SimulatorSettings(accept=("never",)))
    async with aiohttp.ClientSession() as session:
        status, body = await chat(session, stack.url)
    assert status == 502 and "rejected the gateway's credential" in body["error"]["message"]
    assert stack.sim.count == 2
