"""Aliases to backends: URL, path, query, body model and credentials rewritten per
upstream `api`; priority groups and weights; what crosses and what does not."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import (
    KEY_A,
    KEY_B,
    OPENAI_KEY,
    UPSTREAM_KEY,
    Stack,
    default_config,
    serve_in_thread,
)

MESSAGES = [{"role": "user", "content": "hi"}]


async def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as r:
        await r.read()
        return r


async def test_each_api_gets_its_own_url_body_and_auth(stack: Stack) -> None:
    for alias in ("chat", "mistral", "oss"):
        response = await post(stack.url + "/v1/chat/completions",
                              {"model": alias, "messages": MESSAGES}, {"api-key": KEY_B})
        assert response.status == 200
    azure, inference, oss = list(stack.sim.records)[-3:]
    assert azure.path == "/openai/deployments/gpt4o-mini-east/chat/completions?api-version=2024-10-21"
    assert (azure.api_key, azure.authorization) == (UPSTREAM_KEY, None)
    assert inference.path == "/models/chat/completions?api-version=2024-05-01-preview"
    assert inference.body["model"] == "mistral-large-2411" and inference.api_key == UPSTREAM_KEY
    assert oss.path == "/v1/chat/completions" and oss.body["model"] == "llama-3.1-8b"
    assert (oss.api_key, oss.authorization) == (None, f"Bearer {OPENAI_KEY}")


async def test_inbound_credentials_cookies_and_hop_by_hop_never_cross(stack: Stack) -> None:
    headers = {
        "api-key": KEY_A, "Authorization": f"Bearer {KEY_A}", "Cookie": "session=abc",
        "Proxy-Authorization": "Basic eA==", "Keep-Alive": "timeout=5", "TE": "trailers",
        "Upgrade": "h2c", "x-ms-client-request-id": "client-id-1", "User-Agent": "my-app/1.0",
    }
    response = await post(stack.url + "/v1/chat/completions",
                          {"model": "chat", "messages": MESSAGES}, headers)
    assert response.status == 200
    record = stack.sim.records[-1]
    sent = {k.lower(): v for k, v in record.headers.items()}
    for name in ("cookie", "proxy-authorization", "keep-alive", "te", "upgrade"):
        assert name not in sent
    assert record.api_key == UPSTREAM_KEY and record.authorization is None
    assert KEY_A not in repr(record)
    assert sent["user-agent"] == "my-app/1.0"
    # The client's request id reaches the upstream and comes back to the client.
    assert sent["x-ms-client-request-id"] == "client-id-1"
    assert response.headers["x-ms-client-request-id"] == "client-id-1"
    assert len(response.headers["x-request-id"]) == 32


async def test_upstream_cookies_are_never_kept_or_sent_back(make_stack: Any) -> None:
    # An upstream (or a front door before it) setting an affinity cookie must not tie
    # one consumer's later calls, or another's, to it: nothing is stored per upstream.
    seen: list[str | None] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response({"id": "x", "object": "chat.completion", "choices": [],
                                      "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                                "total_tokens": 2}})
        response.set_cookie("ARRAffinity", "backend-7", path="/")
        return response

    upstream_app = web.Application()
    upstream_app.router.add_post("/v1/chat/completions", chat)
    with serve_in_thread(upstream_app) as url:
        def config(sim: str) -> dict[str, Any]:
            made = default_config(sim)
            # A host name, not an IP: cookie jars keep cookies only for names.
            made["deployments"][2]["backends"][0]["url"] = url.replace("127.0.0.1", "localhost") + "/v1"
            return made

        stack = make_stack(config)
        for key in (KEY_B, KEY_B):
            response = await post(stack.url + "/v1/chat/completions",
                                  {"model": "oss", "messages": MESSAGES}, {"api-key": key})
            assert response.status == 200
            assert "Set-Cookie" not in response.headers
    assert seen == [None, None]


def _two_groups(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    auth = {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}
    config["deployments"][0]["backends"] = [
        {"url": sim, "api": "azure-openai", "deployment": "ptu", "weight": 3, "auth": auth},
        {"url": sim, "api": "azure-openai", "deployment": "paygo-a", "weight": 1, "auth": auth},
        {"url": sim, "api": "azure-openai", "deployment": "spill", "priority": 1, "auth": auth},
    ]
    return config


async def test_lowest_priority_group_with_weights(make_stack: Any) -> None:
    stack = make_stack(_two_groups)
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            async with session.post(stack.url + "/v1/chat/completions",
                                    json={"model": "chat", "messages": MESSAGES},
                                    headers={"api-key": KEY_A}) as r:
                assert r.status == 200
    used = Counter(r.path.split("/")[3] for r in stack.sim.records)
    assert "spill" not in used
    assert used["ptu"] + used["paygo-a"] == 400
    # weight 3:1 -> about 300:100; the bounds are ~6 standard deviations wide.
    assert 240 < used["ptu"] < 360


async def test_unknown_alias_lists_callers_aliases(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session, session.post(
        stack.url + "/openai/deployments/mistral/chat/completions?api-version=x",
        json={"messages": MESSAGES}, headers={"api-key": KEY_A},
    ) as r:
        body = await r.json()
    assert r.status == 404
    assert body["error"]["code"] == "DeploymentNotFound"
    assert body["error"]["message"].endswith("chat, embed.")
    assert "mistral" not in body["error"]["message"].split(":", 2)[-1]


async def test_only_the_documented_request_headers_cross(stack: Stack) -> None:
    headers = {
        "api-key": KEY_A, "openai-organization": "org-elsewhere", "openai-project": "proj-x",
        "x-forwarded-for": "10.0.0.1", "x-custom-tenant": "t1", "x-stainless-lang": "python",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "anthropic-beta": "tools-2024", "baggage": "team=search",
        # Hop-by-hop by being named in Connection, whatever its name.
        "Connection": "keep-alive, baggage",
        # The caller's credential under another name.
        "x-ms-client-request-id": f"id-{KEY_A}",
    }
    response = await post(stack.url + "/v1/chat/completions", {"model": "chat", "messages": MESSAGES},
                          headers)
    assert response.status == 200
    sent = {k.lower() for k in stack.sim.records[-1].headers}
    assert {"traceparent", "anthropic-beta"} <= sent
    for name in ("openai-organization", "openai-project", "x-forwarded-for", "x-custom-tenant",
                 "x-stainless-lang", "baggage", "x-ms-client-request-id"):
        assert name not in sent, name
    assert KEY_A not in repr(stack.sim.records[-1])


async def test_an_operator_may_forward_more_but_never_credentials(make_stack: Any) -> None:
    def config(sim: str) -> dict[str, Any]:
        made = default_config(sim)
        made["server"]["forward_request_headers"] = ["x-tenant-*", "api-key", "x-api-key"]
        return made

    stack: Stack = make_stack(config)
    response = await post(stack.url + "/v1/chat/completions", {"model": "chat", "messages": MESSAGES},
                          {"api-key": KEY_A, "x-tenant-id": "t1", "x-api-key": KEY_A})
    assert response.status == 200
    record = stack.sim.records[-1]
    assert {k.lower(): v for k, v in record.headers.items()}.get("x-tenant-id") == "t1"
    assert record.api_key == UPSTREAM_KEY and KEY_A not in repr(record)
