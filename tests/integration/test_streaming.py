"""Streams: strict SSE, events as they come, usage handling, cancellation."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from tests.conftest import EVENT, KEY_A, Stack, post_raw, with_timeouts
from tests.waiting import until

BODY = {"model": "chat", "messages": [{"role": "user", "content": "count"}], "stream": True}


async def test_wire_format_is_strict(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session, session.post(
        stack.url + "/models/chat/completions", json=BODY, headers={"api-key": KEY_A}
    ) as r:
        raw = await r.read()
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert b"\r" not in raw and b"event:" not in raw and not raw.startswith(b":")
    events = EVENT.findall(raw)
    assert b"".join(b"data: " + e + b"\n\n" for e in events) == raw
    assert events[-1] == b"[DONE]"
    assert all(b'"usage":{' not in e for e in events)


async def test_events_arrive_as_the_upstream_sends_them(stack: Stack) -> None:
    """The upstream sends half its 16 tokens and then stalls for good: the client gets
    them while it waits, which it could not if the gateway held events back."""
    headers = {"api-key": KEY_A, "x-sim-fault": "stall"}
    contents = 0
    async with aiohttp.ClientSession() as session, session.post(
        stack.url + "/v1/chat/completions", json=BODY, headers=headers
    ) as r:
        async for line in r.content:
            contents += line.startswith(b"data: {") and b'"content":"' in line
            if contents >= 8:  # the role event and the first 7 tokens
                break
        # Held open until the upstream stalls (its eighth token may still be on its
        # way): a client gone at once could have the gateway cancel it first.
        await until(lambda: stack.sim.records[-1].outcome == "fault:stall",
                    what="the upstream stalling after half its tokens")
    assert contents >= 8


async def test_client_disconnect_cancels_the_upstream_request(stack: Stack) -> None:
    headers = {"api-key": KEY_A, "x-sim-token-ms": "200"}
    async with aiohttp.ClientSession() as session:
        r = await session.post(stack.url + "/v1/chat/completions", json=BODY, headers=headers)
        await r.content.readuntil(b'"content":" ')  # some tokens have arrived
        r.close()  # the client goes away mid-stream
    record = stack.sim.records[-1]
    await until(lambda: record.outcome != "open", what="the upstream request ended")
    # Cancelled, not completed: its 16 tokens x 200 ms were not generated for nobody.
    assert record.outcome == "cancelled"


async def test_usage_counted_from_the_stream(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(stack.url + "/v1/chat/completions", json=BODY,
                                headers={"api-key": KEY_A}) as r:
            await r.read()
        async with session.get(stack.url + "/metrics") as m:
            text = await m.text()
    assert 'gateway_tokens_total{consumer="team-a",deployment="chat",type="completion"} 16.0' in text


async def test_stall_mid_stream_ends_with_an_error_event(make_stack: Any) -> None:
    stack = make_stack(with_timeouts(idle=0.3))
    raw = await post_raw(stack.url + "/v1/chat/completions", BODY, **{"x-sim-fault": "stall"})
    events = EVENT.findall(raw)
    last = orjson.loads(events[-1])
    assert last["error"]["code"] == "upstream_timeout"
    assert b"[DONE]" not in raw


async def test_total_timeout_cuts_a_long_stream(make_stack: Any) -> None:
    stack = make_stack(with_timeouts(total=0.5))
    # 16 tokens 100 ms apart: 1.5 s
    raw = await post_raw(stack.url + "/v1/chat/completions", BODY, **{"x-sim-token-ms": "100"})
    events = EVENT.findall(raw)
    assert len(events) > 2  # some tokens arrived first
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_timeout"
