"""Slow and greedy clients: a connection that trickles its headers, sends nothing,
trickles its body or idles is closed on time; caps on connections and on requests
in flight are answered 503/429 with Retry-After; `Expect: 100-continue` is
answered only once the caller is authenticated."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from gateway.http.connections import CONNECTIONS
from tests.conftest import KEY_A, KEY_B, Stack, default_config
from tests.waiting import until

BODY = b'{"model":"chat","messages":[{"role":"user","content":"hi"}]}'


def with_server(**server: Any) -> Any:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["server"] = {**config["server"], **server}
        return config
    return make


def _port(stack: Stack) -> int:
    return int(stack.url.rsplit(":", 1)[1])


async def _read_all(reader: asyncio.StreamReader, seconds: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), seconds)
    except TimeoutError:
        return b"<still open>"


def _json_body(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"application/json" in head and b"x-request-id:" in head.lower(), head
    parsed: dict[str, Any] = json.loads(body)
    return parsed


async def test_slowloris_connections_are_closed_at_the_header_timeout(make_stack: Any) -> None:
    stack: Stack = make_stack(with_server(header_timeout_seconds=1.0))
    port = _port(stack)
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n":
            if writer.is_closing():
                return
            writer.write(bytes([byte]))
            await asyncio.sleep(0.2)

    tricklers = [asyncio.ensure_future(trickle(w)) for _, w in conns]
    # Meanwhile a normal client is served.
    async with aiohttp.ClientSession() as session, session.post(
            stack.url + "/v1/chat/completions", data=BODY,
            headers={"api-key": KEY_A, "Content-Type": "application/json"}) as r:
        assert r.status == 200
    # Their headers would take 9 s at this pace: a 408 can only be the 1 s header timeout.
    answers = await asyncio.gather(*(_read_all(reader, 30.0) for reader, _ in conns))
    for task in tricklers:
        task.cancel()
    for _, writer in conns:
        writer.close()
    for raw in answers:
        assert raw.startswith(b"HTTP/1.1 408"), raw[:80]
        assert _json_body(raw)["error"]["code"] == "request_timeout"
    # The slots come back once the connections have drained (a second after the answer).
    await until(lambda: stack.app[CONNECTIONS].open == 0, what="every connection slot back")


async def test_a_connection_that_sends_nothing_or_idles_is_closed(make_stack: Any) -> None:
    stack: Stack = make_stack(with_server(header_timeout_seconds=0.5, keepalive_seconds=1.0))
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(stack))
    assert await _read_all(reader, 2.0) == b""  # closed, nothing to answer
    writer.close()
    # A kept-alive connection: one request, then silence until the idle timeout.
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(stack))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await reader.readuntil(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    rest = await _read_all(reader, 30.0)
    # Closed, and not before its 1 s of keep-alive.
    assert rest != b"<still open>" and time.monotonic() - started > 0.8
    writer.close()


async def test_a_body_that_trickles_is_a_408(make_stack: Any) -> None:
    stack: Stack = make_stack(with_server(body_timeout_seconds=0.5))
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(stack))
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\napi-key: " + KEY_A.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                 + BODY[:10])
    raw = await _read_all(reader, 30.0)  # 0.5 s, then at most the 2 s linger
    writer.close()
    assert raw.startswith(b"HTTP/1.1 408")
    assert _json_body(raw)["error"]["code"] == "request_timeout"
    assert stack.sim.count == 0


async def test_connections_over_the_cap_get_a_503(make_stack: Any) -> None:
    stack: Stack = make_stack(with_server(max_connections=5))
    held = [await asyncio.open_connection("127.0.0.1", _port(stack)) for _ in range(5)]
    await until(lambda: stack.app[CONNECTIONS].open == 5, what="the five connections accepted")
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(stack))
    raw = await _read_all(reader, 30.0)
    assert raw.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in raw
    assert _json_body(raw)["error"]["code"] == "server_busy"
    for _, w in [*held, (reader, writer)]:
        w.close()
    await until(lambda: stack.app[CONNECTIONS].open == 0, what="the slots back")
    async with aiohttp.ClientSession() as session, session.get(stack.url + "/healthz") as r:
        assert r.status == 200  # slots come back when connections close


async def test_inflight_caps_per_consumer_and_overall(make_stack: Any) -> None:
    def config(sim: str) -> dict[str, Any]:
        made = with_server(max_inflight_requests=2)(sim)
        made["consumers"][0]["max_inflight"] = 1  # team-a
        return made

    stack: Stack = make_stack(config)
    # Slow enough (3 s) that the ones in flight are still there when the others ask.
    slow = {"api-key": KEY_A, "x-sim-ttft-ms": "3000", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        first = asyncio.ensure_future(session.post(stack.url + "/v1/chat/completions", data=BODY,
                                                   headers=slow))
        await until(lambda: stack.sim.count == 1, what="the first request in flight")
        async with session.post(stack.url + "/v1/chat/completions", data=BODY,
                                headers={**slow, "x-sim-ttft-ms": "0"}) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "1"
            assert r.headers["retry-after-ms"] == "1000"
            assert (await r.json())["error"]["code"] == "too_many_requests"
        other = asyncio.ensure_future(session.post(
            stack.url + "/v1/chat/completions", data=BODY,
            headers={**slow, "api-key": KEY_B}))
        await until(lambda: stack.sim.count == 2, what="the second request in flight")
        # Two in flight: the process's cap. A third caller gets 503.
        async with session.post(stack.url + "/v1/chat/completions", data=BODY,
                                headers={**slow, "api-key": KEY_B}) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "1"
            assert (await r.json())["error"]["code"] == "server_busy"
        for task in (first, other):
            response = await task
            assert response.status == 200
            response.release()
        async with session.post(stack.url + "/v1/chat/completions", data=BODY,
                                headers={**slow, "x-sim-ttft-ms": "0"}) as r:
            assert r.status == 200  # the slots are free again


async def test_expect_100_continue_waits_for_authentication(stack: Stack) -> None:
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n" % len(BODY))
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(stack))
    writer.write(head + b"api-key: wrong\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
    assert first.startswith(b"HTTP/1.1 401")  # refused without ever asking for the body
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(stack))
    writer.write(head + b"api-key: " + KEY_A.encode() + b"\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)).startswith(
        b"HTTP/1.1 100 Continue")
    writer.write(BODY)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
    assert answer.startswith(b"HTTP/1.1 200")
    writer.close()
