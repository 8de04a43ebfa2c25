"""Every error a client can provoke comes back in the contract's JSON shape."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.simulator import Fault, SimulatorSettings
from tests.conftest import KEY_A, KEY_B, UPSTREAM_KEY, Stack, default_config, with_timeouts

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


async def call(url: str, body: Any = None, *, key: str | None = KEY_A, method: str = "POST",
               headers: dict[str, str] | None = None, data: bytes | None = None
               ) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    hdrs = {"api-key": key} if key else {}
    hdrs.update(headers or {})
    async with aiohttp.ClientSession() as session, session.request(
        method, url, json=body if data is None else None, data=data, headers=hdrs
    ) as response:
        assert response.content_type == "application/json"
        assert "x-request-id" in response.headers
        return response.status, await response.json(), response.headers


def assert_error(body: dict[str, Any], code: str) -> None:
    error = body["error"]
    assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"]
    assert "type" in error and "param" in error


@pytest.mark.parametrize(("body", "code"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "no_model_name"),
    ({"model": 5, "messages": []}, "invalid_request"),
    ({"model": "chat", "messages": [], "stream": "yes"}, "invalid_request"),
    ({"model": "chat", "messages": [], "max_tokens": "ten"}, "invalid_request"),
    ({"model": "chat"}, "invalid_request"),
    ([1, 2], "invalid_request"),
])
async def test_bad_bodies_are_400(stack: Stack, body: Any, code: str) -> None:
    status, answer, _ = await call(stack.url + "/v1/chat/completions", body)
    assert status == 400
    assert_error(answer, code)


async def test_malformed_json(stack: Stack) -> None:
    status, body, _ = await call(stack.url + "/models/chat/completions", data=b'{"model": ')
    assert status == 400
    assert_error(body, "invalid_request")
    assert "not valid JSON" in body["error"]["message"]


def small_bodies(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    config["server"]["max_body_bytes"] = 1000
    return config


async def test_body_too_large(make_stack: Any) -> None:
    stack = make_stack(small_bodies)
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}
    status, body, _ = await call(stack.url + "/v1/chat/completions", big)
    assert status == 413
    assert_error(body, "request_too_large")
    assert stack.sim.count == 0


async def test_missing_and_wrong_credentials(stack: Stack) -> None:
    status, body, _ = await call(stack.url + "/v1/chat/completions", CHAT, key=None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert "missing" in body["error"]["message"]
    status, body, _ = await call(stack.url + "/models/chat/completions", CHAT, key="bad")
    assert status == 401 and body["error"]["code"] == "401"
    # A bearer with a valid key works like the api-key header.
    status, _, _ = await call(stack.url + "/v1/chat/completions", CHAT, key=None,
                              headers={"Authorization": f"Bearer {KEY_A}"})
    assert status == 200
    assert stack.sim.count == 1


@pytest.mark.parametrize("mode", ["error", "drop", "pass-through"])
async def test_extra_parameters(stack: Stack, mode: str) -> None:
    body = {**CHAT, "frobnicate": 3, "temperature": 0.2}
    status, answer, _ = await call(stack.url + "/models/chat/completions", body,
                                   headers={"extra-parameters": mode})
    if mode == "error":
        assert status == 400
        assert_error(answer, "extra_parameters_not_allowed")
        assert "frobnicate" in answer["error"]["message"]
        assert stack.sim.count == 0
        return
    assert status == 200
    sent = stack.sim.records[-1].body
    assert sent["temperature"] == 0.2
    assert ("frobnicate" in sent) is (mode == "pass-through")


@pytest.mark.parametrize("path", ["/v1/batches", "/openai/v1/files/abc", "/v1/realtime",
                                  "/v1/assistants", "/openai/deployments/chat/moderations"])
async def test_unsupported_surfaces_name_the_limitation(stack: Stack, path: str) -> None:
    status, body, _ = await call(stack.url + path, {})
    assert status == 400
    assert_error(body, "unsupported_operation")
    assert "does not support" in body["error"]["message"]


async def test_unknown_route_and_method(stack: Stack) -> None:
    status, body, _ = await call(stack.url + "/nothing/here", {})
    assert status == 404
    assert_error(body, "not_found")
    status, body, _ = await call(stack.url + "/v1/chat/completions", method="GET")
    assert status == 405
    assert_error(body, "method_not_allowed")


async def test_upstream_error_passes_through(stack: Stack) -> None:
    # With a single backend there is nowhere to fail over: its own answer is passed on.
    status, body, _ = await call(stack.url + "/v1/chat/completions", CHAT,
                                 headers={"x-sim-fault": "503"})
    assert status == 503 and body["error"]["code"] == "ServiceUnavailable"
    status, body, headers = await call(stack.url + "/v1/chat/completions", CHAT,
                                       headers={"x-sim-fault": "429", "x-sim-retry-after-ms": "1500"})
    assert status == 429
    assert body["error"]["code"] == "429" and "retry after 2 seconds" in body["error"]["message"]
    assert headers["retry-after"] == "2" and headers["retry-after-ms"] == "1500"


async def test_upstream_reset_is_502(stack: Stack) -> None:
    status, body, _ = await call(stack.url + "/v1/chat/completions", CHAT,
                                 headers={"x-sim-fault": "reset"})
    assert status == 502
    assert_error(body, "upstream_error")


async def test_upstream_hang_is_504(make_stack: Any) -> None:
    stack = make_stack(with_timeouts(response=0.3))
    status, body, _ = await call(stack.url + "/v1/chat/completions", CHAT,
                                 headers={"x-sim-fault": "hang"})
    assert status == 504
    assert_error(body, "upstream_timeout")


async def test_unreachable_upstream_is_502(make_stack: Any) -> None:
    def dead(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["deployments"][0]["backends"][0]["url"] = "http://127.0.0.1:9"
        return config

    stack = make_stack(dead)
    status, body, _ = await call(stack.url + "/v1/chat/completions", CHAT)
    assert status == 502
    assert_error(body, "upstream_error")


async def test_configured_faults(make_stack: Any) -> None:
    stack = make_stack(sim=SimulatorSettings(accept=(UPSTREAM_KEY,),
                                             faults=[Fault(kind="500", every=2)]))
    statuses = [(await call(stack.url + "/v1/chat/completions", CHAT, key=KEY_B))[0]
                for _ in range(4)]
    assert statuses == [200, 500, 200, 500]


async def test_upstream_refusing_the_gateways_credential_is_502(make_stack: Any) -> None:
    stack = make_stack(sim=SimulatorSettings(accept=("some-other-key",)))
    status, body, _ = await call(stack.url + "/v1/chat/completions", CHAT)
    assert status == 502
    assert_error(body, "upstream_error")
    assert "rejected the gateway's credential" in body["error"]["message"]


async def test_chunked_body_too_large(make_stack: Any) -> None:
    stack = make_stack(small_bodies)

    async def chunks() -> Any:
        yield b'{"model": "chat", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}]}'

    status, body, _ = await call(stack.url + "/v1/chat/completions", data=chunks())  # type: ignore[arg-type]
    assert status == 413
    assert_error(body, "request_too_large")
    assert stack.sim.count == 0
