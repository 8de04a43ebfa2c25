"""Failover across backends while the client waits: cooldowns from 429s, circuit
breakers, priority groups, and what the client gets when nothing is left. Each
backend is its own simulator, so each can fail on its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import time
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
from tests.waiting import until

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


async def metric(url: str, line: str) -> bool:
    """Whether the gateway's /metrics has this sample line now."""
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as r:
        return line in (await r.text()).splitlines()


async def test_429_fails_over_and_cools_down_for_exactly_what_it_asked(
    make_stack: Any, exit_stack: contextlib.ExitStack
) -> None:
    """b0 (preferred) answers 429 asking for 600 ms: the request fails over to b1, b0 is
    not asked again before those 600 ms are over, and is the first choice again for
    the first request sent once they surely are. Both bounds come from the clocks of
    the events themselves (the simulator's record of the 429, the client's answer),
    so a slow machine can neither fail nor pass this by its speed."""
    up = Upstreams(exit_stack, throttled(600), SimulatorSettings())
    stack: Stack = make_stack(config(up.urls, [0, 1]))
    status, _, _ = await post(stack)
    answered = time.monotonic()
    assert status == 200 and (up.sim(0).count, up.sim(1).count) == (1, 1)
    throttle = up.sim(0).records[0]
    assert throttle.outcome == "fault:429" and throttle.ended is not None
    up.sim(0).settings.faults = []
    sent: list[tuple[float, bool]] = []  # (when sent, whether b0 answered it)

    async def b0_answers() -> bool:
        at, before = time.monotonic(), up.sim(0).count
        assert (await post(stack))[0] == 200
        sent.append((at, up.sim(0).count > before))
        return sent[-1][1]

    await until(b0_answers, what="b0 back in rotation", interval=0.02)
    # Not asked while it was cooling down: its next request came 600 ms after the 429 ...
    assert up.sim(0).records[1].started >= throttle.ended + 0.6
    # ... and the first request sent when the 600 ms were over for sure went to b0.
    assert [b0 for at, b0 in sent if at >= answered + 0.6][:1] in ([], [True])


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
    for _ in range(100):
        assert (await post(stack))[0] == 200
    assert up.sim(2).count == 0
    assert up.sim(0).count + up.sim(1).count == 100
    # Equal weights (one request at a time: a fair coin each): the two share the load.
    # P(one of them gets fewer than 20 of 100) = 2 * P(Binomial(100, 1/2) <= 19) ~ 3e-10.
    assert up.sim(0).count >= 20 and up.sim(1).count >= 20


async def test_all_throttled_is_429_until_the_soonest_recovery(
    make_stack: Any, exit_stack: contextlib.ExitStack
) -> None:
    up = Upstreams(exit_stack, throttled(30_000), throttled(15_000))
    stack: Stack = make_stack(config(up.urls, [0, 1]))
    first = await post(stack)
    assert first[0] == 429  # the last backend's own answer
    status, body, headers = await post(stack)
    answered = time.monotonic()
    assert status == 429 and body["error"]["code"] == "429"
    assert "rate limited by its upstream" in body["error"]["message"]
    # What is left of the soonest cooldown (b1's 15 s), from its 429 to this answer.
    ms = int(headers["retry-after-ms"])
    since = answered - up.sim(1).records[0].started
    assert 15_000 - 1000 * since - 1 <= ms <= 15_000
    assert int(headers["Retry-After"]) == math.ceil(ms / 1000)
    assert up.sim(0).count == 1 and up.sim(1).count == 1  # not asked again meanwhile


async def test_breaker_opens_half_opens_and_closes(
    make_stack: Any, exit_stack: contextlib.ExitStack
) -> None:
    up = Upstreams(exit_stack, SimulatorSettings(faults=[Fault(kind="500")]))
    stack: Stack = make_stack(config(up.urls, [0], {"failures": 2, "open_seconds": 3}))
    assert [(await post(stack))[0] for _ in range(2)] == [500, 500]
    status, body, _ = await post(stack)
    assert status == 503 and body["error"]["code"] == "no_healthy_backend"
    assert up.sim(0).count == 2
    async with aiohttp.ClientSession() as session:
        metrics = await (await session.get(stack.url + "/metrics")).text()
    assert 'gateway_backend_available{backend="b0",deployment="chat"} 0.0' in metrics
    up.sim(0).settings.faults = []
    # Half-open after its 3 s: it may be chosen again, for one probe.
    await until(lambda: metric(stack.url, 'gateway_backend_available{backend="b0",deployment="chat"} 1.0'))
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
                                                           "seconds": 3}
        return c

    stack: Stack = make_stack(spill)
    assert [(await post(stack))[0] for _ in range(5)] == [200] * 5
    assert (up.sim(0).count, up.sim(1).count) == (1, 4)  # low quota: the next one is preferred
    up.sim(0).settings.remaining_tokens = 50_000

    async def b0_answers() -> bool:
        before = up.sim(0).count
        assert (await post(stack))[0] == 200
        return up.sim(0).count > before

    await until(b0_answers, what="b0 preferred again after its spillover", interval=0.1)
    assert up.sim(0).records[1].started >= up.sim(0).records[0].ended + 3
    for _ in range(3):
        await post(stack)
    assert up.sim(0).count == 5  # recovered: first choice again, each time


async def test_cooldowns_are_shared_between_gateway_processes(
    exit_stack: contextlib.ExitStack, redis_server: Any, tmp_path: Any,
    background: list[subprocess.Popen[str]],
) -> None:
    up = Upstreams(exit_stack, throttled(60_000), SimulatorSettings())
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
    # The cooldown reached the second process over Redis.
    await until(lambda: metric(urls[1], 'gateway_backend_cooling_down{backend="b0",deployment="chat"} 1.0'))
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
