"""Each fault of gateway/simulator/faults.py does what it says, on its own (the
recorded ones are also held against the samples in test_contract_shapes.py): how an
answer is replaced, and how a stream misbehaves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.simulator import SIMULATOR, Fault, SimulatorSettings, create_simulator
from gateway.simulator.faults import ANSWER_FAULTS, STREAM_FAULTS
from gateway.simulator.settings import FaultKind
from tests.unit.gateway.simulator.contract import sse

Client = TestClient  # type: ignore[type-arg]
CHAT = "/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**BODY, "stream": True, "stream_options": {"include_usage": True}}


@pytest.fixture
async def sim(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_simulator(SimulatorSettings()))


def test_every_fault_kind_is_an_answer_or_a_stream_fault() -> None:
    assert set(FaultKind.__args__) == ANSWER_FAULTS | STREAM_FAULTS  # type: ignore[attr-defined]
    assert not ANSWER_FAULTS & STREAM_FAULTS


async def answer(sim: Client, fault: str, body: dict[str, Any] = BODY,
                 **headers: str) -> tuple[int, aiohttp.typedefs.LooseHeaders, bytes]:
    async with sim.post(CHAT, json=body, headers={"x-sim-fault": fault, **headers},
                        allow_redirects=False) as r:
        return r.status, r.headers, await r.read()


@pytest.mark.parametrize(("fault", "status", "check"), [
    ("string-error", 500, lambda b: isinstance(json.loads(b)["error"], str)),
    ("text-error", 502, lambda b: b.startswith(b"<html>")),
    ("error-200", 200, lambda b: json.loads(b)["error"]["code"] == "server_error"),
    ("not-object", 200, lambda b: json.loads(b) == [1, 2, 3]),
    ("redirect", 302, lambda b: True),
    ("204", 204, lambda b: b == b""),
    ("status-999", 999, lambda b: b == b"{}"),
])
async def test_odd_answers(sim: Client, fault: str, status: int, check: Callable[[bytes], bool]) -> None:
    got, headers, body = await answer(sim, fault)
    assert got == status and check(body), body[:100]
    if fault == "redirect":
        assert headers["Location"] == "http://127.0.0.1:9/elsewhere"
    assert sim.app[SIMULATOR].records[-1].outcome == f"fault:{fault}"


async def test_oversized_and_hostile_headers(sim: Client) -> None:
    status, _, body = await answer(sim, "oversized", **{"x-sim-size": "1000"})
    assert status == 200 and len(body) == 1000 + len(b'{"pad":""}')
    status, headers, _ = await answer(sim, "hostile-headers")
    assert status == 429 and headers["retry-after"] == "99999999999"
    assert headers["retry-after-ms"] == "-5" and len(headers["x-odd"]) == 7000
    assert not headers["x-ratelimit-remaining-tokens"].isascii()


@pytest.mark.parametrize(("fault", "headers"), [
    ("429", {"retry-after": "2", "retry-after-ms": "1500"}),
    ("429-retry-after", {"retry-after": "2", "x-ratelimit-reset-tokens": "2s"}),
    ("429-retry-inf", {"retry-after": "inf", "retry-after-ms": "nan"}),
])
async def test_throttling_variants(sim: Client, fault: str, headers: dict[str, str]) -> None:
    status, got, body = await answer(sim, fault, **{"x-sim-retry-after-ms": "1500"})
    assert status == 429
    assert {k: got[k] for k in headers} == headers
    assert "Please retry after 2 seconds" in json.loads(body)["error"]["message"]
    if fault == "429-retry-after":
        assert "retry-after-ms" not in got


async def test_hang_never_answers_and_reset_closes(sim: Client) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await answer(sim, "hang")
    with pytest.raises(aiohttp.ClientError):
        await answer(sim, "reset")


async def test_faults_from_the_settings_every_nth_or_by_rate(
        aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    every = await aiohttp_client(create_simulator(SimulatorSettings(
        faults=[Fault(kind="500", every=3)])))
    assert [(await answer(every, ""))[0] for _ in range(6)] == [200, 200, 500, 200, 200, 500]
    never = await aiohttp_client(create_simulator(SimulatorSettings(
        faults=[Fault(kind="503", rate=0.0)])))
    assert {(await answer(never, ""))[0] for _ in range(5)} == {200}


async def stream(sim: Client, fault: str, body: dict[str, Any] = STREAM) -> tuple[Any, bytes]:
    async with sim.post(CHAT, json=body, headers={"x-sim-fault": fault}) as r:
        return r.headers, await r.read()


async def test_stream_endings(sim: Client) -> None:
    _, normal = await stream(sim, "")
    assert normal.endswith(b"data: [DONE]\n\n") and b'"usage":{' in normal
    _, bare = await stream(sim, "bare-done")
    assert bare.endswith(b"\n\n[DONE]\n\n") and b"data: [DONE]" not in bare
    _, none = await stream(sim, "no-done")
    assert b"[DONE]" not in none and none.endswith(b"\n\n")
    _, no_usage = await stream(sim, "no-usage")
    assert b'"usage":{' not in no_usage and no_usage.endswith(b"data: [DONE]\n\n")
    status, _, plain = await answer(sim, "no-usage")
    assert status == 200 and "usage" not in json.loads(plain)


async def test_bad_events_in_the_middle(sim: Client) -> None:
    _, raw = await stream(sim, "not-object-event")
    assert b'data: [{"usage": {"prompt_tokens": 1}}]\n\n' in raw
    _, raw = await stream(sim, "garbage-event")
    assert b'data: {"usage": {not json\n\n' in raw
    # Everything else in them is a well-formed stream.
    good = [e for e in raw.split(b"\n\n") if e and b"not json" not in e]
    assert good[-1] == b"data: [DONE]"
    assert all(e.startswith(b"data: ") and isinstance(json.loads(e[6:]), dict) for e in good[:-1])


async def test_long_line_and_endless(sim: Client) -> None:
    async with sim.post(CHAT, json=STREAM, headers={"x-sim-fault": "long-line",
                                                    "x-sim-size": "5000"}) as r:
        assert await r.read() == b"data: " + b"x" * 5000
    async with sim.post(CHAT, json=STREAM, headers={"x-sim-fault": "endless"}) as r:
        seen = b""
        while seen.count(b"\n\n") < 200:
            seen += await r.content.readany()
        assert b'"content":" more"' in seen and b"[DONE]" not in seen


async def test_stall_sends_half_then_waits(sim: Client) -> None:
    async with sim.post(CHAT, json={**STREAM, "stream_options": None},
                        headers={"x-sim-fault": "stall", "x-sim-tokens": "10"}) as r:
        events = 0
        while events < 6:  # the role event and the first 5 of 10 tokens
            line = await r.content.readline()
            events += line.startswith(b"data: {")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await r.content.readline()
                await r.content.readline()
    assert sim.app[SIMULATOR].records[-1].outcome in ("fault:stall", "cancelled")


async def test_no_content_type(sim: Client) -> None:
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    body = json.dumps(STREAM).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-sim-fault: no-content-type\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    raw = await reader.read()
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-type" not in head.lower()
    assert [e[1] for e in sse(rest.decode())][-1] == "[DONE]"
