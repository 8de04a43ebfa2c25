"""Failover across backends while the client waits: cooldowns from 429s, circuit
breakers, priority groups, and what the client gets when nothing is left. Each
backend is its own simulator, so each can fail on its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from gateway.simulator import SIMULATOR, Fault, Simulator, SimulatorSettings, create_simulator
from policies.auth import hash_key
from tests.conftest import (
    GATEWAY,
    KEY_A,
    Stack,
    default_config,
    free_port,
    serve_in_thread,
    wait_up,
)

BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


class Upstreams:
    def __init__(self, stack: contextlib.ExitStack, *settings: SimulatorSettings) -> None:
        self.apps = [create_simulator(s) for s in settings]
        self.urls = [stack.enter_context(serve_in_thread(app)) for app in self.apps]

    def sim(self, i: int) -> Simulator:
        return self.apps[i][SIMULATOR]


@pytest.fixture
def exit_stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


def config(urls: list[str], priorities: list[int], breaker: dict[str, Any] | None = None) -> Any:
    def make(sim: str) -> dict[str, Any]:
        c = default_config(sim)
        c["deployments"][0]["backends"] = [
            {"url": u, "api": "azure-openai", "deployment": f"b{i}", "name": f"b{i}",
             "priority": p} for i, (u, p) in enumerate(zip(urls, priorities, strict=True))]
        if breaker:
            c["deployments"][0]["routing"] = {"breaker": breaker}
        return c
    return make


async def post(stack: Stack) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as session, session.post(
        stack.url + "/v1/chat/completions", json=BODY, headers={"api-key": KEY_A}
    ) as r:
        return r.status, await r.json(), r.headers


def throttled(ms: int) -> SimulatorSettings:
    return SimulatorSettings(faults=[Fault(kind="429")], retry_after_ms=ms)


async def test_429_fails_over_and_cools_down_for_what_it_asked(
    make_stack: Any, exit_stack: contextlib.ExitStack
) -> None:
    up = Upstreams(exit_stack, throttled(600), SimulatorSettings())
    stack: Stack = make_stack(config(up.urls, [0, 0]))
    results = [await post(stack) for _ in range(6)]
    assert [r[0] for r in results] == [200] * 6
    # b0 was asked at most once: after its 429 it cooled down for 600 ms.
    assert up.sim(0).count <= 1 and up.sim(1).count >= 5
    up.sim(0).settings.faults = []
    await asyncio.sleep(0.7)
    for _ in range(20):
        await post(stack)
    assert up.sim(0).count > 1  # back in rotation after exactly its cooldown


@pytest.mark.parametrize("fault", ["500", "503", "reset"])
async def test_errors_fail_over_before_the_first_byte(
    make_stack: Any, exit_stack: contextlib.ExitStack, fault: str
) -> None:
    up = Upstreams(exit_stack, SimulatorSettings(faults=[Fault(kind=fault)]), SimulatorSettings())
    stack: Stack = make_stack(config(up.urls, [0, 1]))
    status, body, _ = await post(stack)
    assert status == 200 and body["choices"][0]["message"]["content"]
    assert up.sim(0).count == 1 and up.sim(1).count == 1
    assert stack.access_log()[-1]["backend"] == "b1"


async def test_priority_groups_spill_only_when_needed(
    make_stack: Any, exit_stack: contextlib.ExitStack
) -> None:
    up = Upstreams(exit_stack, SimulatorSettings(), SimulatorSettings(), SimulatorSettings())
    stack: Stack = make_stack(config(up.urls, [0, 0, 1]))
    for _ in range(10):
        assert (await post(stack))[0] == 200
    assert up.sim(2).count == 0
    assert up.sim(0).count + up.sim(1).count == 10
    # Equal weights: the two share the load.
    assert up.sim(0).count >= 2 and up.sim(1).count >= 2


async def test_all_throttled_is_429_until_the_soonest_recovery(
    make_stack: Any, exit_stack: contextlib.ExitStack
) -> None:
    up = Upstreams(exit_stack, throttled(3000), throttled(1500))
    stack: Stack = make_stack(config(up.urls, [0, 1]))
    first = await post(stack)
    assert first[0] == 429  # the last backend's own answer
    status, body, headers = await post(stack)
    assert status == 429 and body["error"]["code"] == "429"
    assert "rate limited by its upstream" in body["error"]["message"]
    assert 1000 <= int(headers["retry-after-ms"]) <= 1500 and headers["Retry-After"] == "2"
    assert up.sim(0).count == 1 and up.sim(1).count == 1  # not asked again meanwhile


async def test_breaker_opens_half_opens_and_closes(
    make_stack: Any, exit_stack: contextlib.ExitStack
) -> None:
    up = Upstreams(exit_stack, SimulatorSettings(faults=[Fault(kind="500")]))
    stack: Stack = make_stack(config(up.urls, [0], {"failures": 2, "open_seconds": 0.5}))
    assert [(await post(stack))[0] for _ in range(2)] == [500, 500]
    status, body, _ = await post(stack)
    assert status == 503 and body["error"]["code"] == "no_healthy_backend"
    assert up.sim(0).count == 2
    async with aiohttp.ClientSession() as session:
        metrics = await (await session.get(stack.url + "/metrics")).text()
    assert 'gateway_backend_available{backend="b0",deployment="chat"} 0.0' in metrics
    up.sim(0).settings.faults = []
    await asyncio.sleep(0.6)
    assert (await post(stack))[0] == 200  # the probe succeeds and closes the breaker
    assert [(await post(stack))[0] for _ in range(3)] == [200, 200, 200]


async def test_three_backends_under_concurrent_sdk_load(
    make_stack: Any, exit_stack: contextlib.ExitStack
) -> None:
    """One throttles (429 + retry-after-ms), one resets, one is healthy: every request
    succeeds; the throttled one is asked once and then rests for its cooldown, the
    resetting one is asked once and then its breaker stays open."""
    from openai import AsyncOpenAI

    up = Upstreams(exit_stack, throttled(30_000),
                   SimulatorSettings(faults=[Fault(kind="reset")]), SimulatorSettings())
    stack: Stack = make_stack(config(up.urls, [0, 1, 2], {"failures": 1, "open_seconds": 30}))
    client = AsyncOpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0)

    async def one() -> str:
        reply = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}])
        return reply.choices[0].message.content or ""

    assert await one()  # b0: 429, b1: reset, b2: answers
    replies = await asyncio.gather(*(one() for _ in range(40)))
    assert all(replies)
    assert (up.sim(0).count, up.sim(1).count, up.sim(2).count) == (1, 1, 41)
    await client.close()


async def test_proactive_spillover(make_stack: Any, exit_stack: contextlib.ExitStack) -> None:
    up = Upstreams(exit_stack, SimulatorSettings(remaining_tokens=500), SimulatorSettings())

    def spill(sim: str) -> dict[str, Any]:
        c = config(up.urls, [0, 1])(sim)
        c["deployments"][0]["backends"][0]["spillover"] = {"remaining_tokens": 1000,
                                                           "seconds": 0.5}
        return c

    stack: Stack = make_stack(spill)
    assert [(await post(stack))[0] for _ in range(5)] == [200] * 5
    assert (up.sim(0).count, up.sim(1).count) == (1, 4)  # low quota: the next one is preferred
    up.sim(0).settings.remaining_tokens = 50_000
    await asyncio.sleep(0.6)
    for _ in range(3):
        await post(stack)
    assert up.sim(0).count == 4  # recovered: first choice again


async def test_cooldowns_are_shared_between_gateway_processes(
    exit_stack: contextlib.ExitStack, redis_server: Any, tmp_path: Any,
    background: list[subprocess.Popen[str]],
) -> None:
    up = Upstreams(exit_stack, throttled(5000), SimulatorSettings())
    c = config(up.urls, [0, 1])(up.urls[1])
    c["deployments"] = c["deployments"][:1]
    c["consumers"] = [{"name": "team-a", "api_keys": [hash_key(KEY_A)], "deployments": ["chat"]}]
    c["redis"] = {"url": redis_server.url}

    def start_gateway(i: int) -> str:
        port = free_port()
        c["server"] = {"host": "127.0.0.1", "port": port}
        path = tmp_path / f"gw{i}.yaml"
        path.write_text(json.dumps(c))
        proc = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        background.append(proc)
        wait_up(f"http://127.0.0.1:{port}", proc)
        return f"http://127.0.0.1:{port}"

    urls = [await asyncio.to_thread(start_gateway, i) for i in range(2)]

    async def post_to(url: str) -> int:
        async with aiohttp.ClientSession() as session, session.post(
            url + "/v1/chat/completions", json=BODY, headers={"api-key": KEY_A}
        ) as r:
            return r.status

    assert await post_to(urls[0]) == 200  # b0 answers 429 to the first process ...
    assert up.sim(0).count == 1
    await asyncio.sleep(0.3)
    assert [await post_to(urls[1]) for _ in range(5)] == [200] * 5
    assert up.sim(0).count == 1  # ... and the second process never asks b0 meanwhile
    assert up.sim(1).count == 6


@pytest.mark.parametrize(("path", "body", "fault"), [
    ("/v1/responses", {"model": "new", "input": "hi"}, "500"),
    ("/v1/responses", {"model": "new", "input": "hi", "stream": True}, "503"),
    ("/anthropic/v1/messages", {"model": "claude", "max_tokens": 16, "stream": True,
                                "messages": [{"role": "user", "content": "hi"}]}, "529"),
])
async def test_the_new_apis_fail_over_before_the_first_byte(
        make_stack: Any, exit_stack: contextlib.ExitStack, path: str, body: dict[str, Any],
        fault: str) -> None:
    ups = Upstreams(exit_stack, SimulatorSettings(faults=[Fault(kind=fault)]), SimulatorSettings())

    def make(sim: str) -> dict[str, Any]:
        c = default_config(sim)
        c["deployments"] += [
            {"name": "new", "model": "gpt-5-mini", "backends": [
                {"url": u, "api": "azure-openai", "deployment": "d", "name": f"b{i}", "priority": i}
                for i, u in enumerate(ups.urls)]},
            {"name": "claude", "model": "claude-sonnet-4-5", "backends": [
                {"url": u + "/anthropic", "api": "anthropic", "name": f"c{i}", "priority": i}
                for i, u in enumerate(ups.urls)]}]
        return c

    stack: Stack = make_stack(make)
    async with aiohttp.ClientSession() as session, session.post(
            stack.url + path, json=body, headers={"api-key": "key-team-b"}) as r:
        assert r.status == 200
        raw = await r.read()
    assert raw and b'"error":{' not in raw and b'"type":"error"' not in raw
    assert [rec.outcome for rec in ups.sim(0).records] == [f"fault:{fault}"]
    assert [rec.outcome for rec in ups.sim(1).records] == ["complete"]
