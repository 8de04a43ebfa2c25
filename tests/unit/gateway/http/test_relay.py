"""The relay (gateway.http.relay) between a real upstream and a real client: an aiohttp
server on a loopback port answers recorded samples (tests/fixtures/contract), properly
or rudely (a raw socket server for what aiohttp would not send); the gateway side is an
aiohttp app with the gateway's own request middleware, whose handler relays with
`relay_json` or `StreamRelay` over the gateway's upstream session; the client is a real
aiohttp client. Asserted: the bytes the client receives, and what the Flow records."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.apis import Api
from gateway.apis.anthropic import MESSAGES
from gateway.apis.chat import CHAT
from gateway.apis.responses import RESPONSES
from gateway.core.flow import FLOW, Flow
from gateway.http.middleware import flow as flow_middleware
from gateway.http.relay import STREAM_HEADERS, StreamRelay, relay_json
from gateway.ops.accesslog import ACCESS_LOG, AccessLog
from gateway.ops.metrics import METRICS, Metrics
from gateway.upstream.client import SESSION, session_ctx
from policies import PolicyChain, Usage
from policies.content import BlocklistConfig, ContentFilterPolicy, ContentProfile
from tests.samples import decode, objects, raw, recorded, sample, unescape

WAIT = 30.0  # generous: a busy machine is slow, never wrong
SEND_IN = 37  # bytes per write when an upstream streams a recorded sample: events split anywhere

CHAT_PATH, RESPONSES_PATH, MESSAGES_PATH = "/v1/chat/completions", "/v1/responses", "/v1/messages"
CHAT_ASK: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}
RESPONSES_ASK: dict[str, Any] = {"model": "gpt-5", "input": "How is it outside?"}
MESSAGES_ASK: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 100,
                                "messages": [{"role": "user", "content": "How is it outside?"}]}


# --- the upstream -------------------------------------------------------------------
Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Upstream:
    """An aiohttp server whose answer a test sets; it keeps the bodies it was sent."""

    def __init__(self) -> None:
        self.answer: Answer = json_answer(b"{}")
        self.bodies: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        return await self.answer(request)


def json_answer(body: bytes, status: int = 200, content_type: str | None = "application/json",
                headers: dict[str, str] | None = None) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=body, status=status, headers=headers)
        if content_type:
            response.content_type = content_type
        return response
    return answer


def sse_answer(data: bytes, then: Callable[[web.Request], Awaitable[None]] | None = None) -> Answer:
    """`data` sent in small writes, as an upstream streams; `then` runs after the last."""
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for at in range(0, len(data), SEND_IN):
            await response.write(data[at:at + SEND_IN])
        if then is not None:
            await then(request)
        await response.write_eof()
        return response
    return answer


async def cut_off(request: web.Request) -> None:
    """The connection is dropped in the middle of the chunked body: no final chunk."""
    assert request.transport is not None
    request.transport.close()


class RawUpstream:
    """A socket server that answers every request with `response`, byte for byte, then
    closes the connection: what an odd server or a proxy in between may send."""

    def __init__(self) -> None:
        self.response = b""
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/raw"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            writer.write(self.response)
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def close_delimited(body: bytes, content_type: bytes | None) -> bytes:
    """An HTTP/1.1 answer without length or chunks: its body ends when the socket closes."""
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
    if content_type:
        head += b"Content-Type: " + content_type + b"\r\n"
    return head + b"\r\n" + body


def with_length(body: bytes) -> bytes:
    """A 200 with a length and no Content-Type at all."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


# --- the gateway side ---------------------------------------------------------------
FLOWS = web.AppKey("test_flows", list)
DONE = web.AppKey("test_done", asyncio.Event)


@dataclass
class Relay:
    """How the gateway's handler relays (what ModelCall.deliver decides in production)."""

    api: Api
    path: str
    upstream: str
    chain: PolicyChain = field(default_factory=PolicyChain)
    max_event_bytes: int = 1 << 20
    max_response_bytes: int = 1 << 24
    read_timeout: float | None = None
    remembered: list[tuple[str, bool]] | None = None  # (id, whether anything was sent yet)


@web.middleware
async def finished(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outside the gateway's own middleware: set once the Flow is complete."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    finally:
        request.app[DONE].set()


def gateway_app(relay: Relay) -> web.Application:
    app = web.Application(middlewares=[finished, flow_middleware])
    app[METRICS] = Metrics()
    app[ACCESS_LOG] = AccessLog(io.BytesIO())
    app[FLOWS] = []
    app[DONE] = asyncio.Event()
    app.cleanup_ctx.append(session_ctx)

    async def handle(request: web.Request) -> web.StreamResponse:
        flow: Flow = request[FLOW]
        request.app[FLOWS].append(flow)
        api = relay.api
        flow.api, flow.api_name, flow.deployment = api, api.name, "d"
        flow.body = await request.json()
        flow.stream = api.is_stream(flow.body)
        flow.chain = relay.chain
        if relay.chain.looks_at_requests:
            await relay.chain.on_request(flow)
        flow.strip_usage = flow.stream and api.ask_stream_usage(flow.body)
        remember = None
        if relay.remembered is not None:
            remembered = relay.remembered

            async def remember(ident: str) -> None:
                remembered.append((ident, flow.ttft is not None))
        timeout = aiohttp.ClientTimeout(sock_read=relay.read_timeout)
        async with request.app[SESSION].post(relay.upstream, data=orjson.dumps(flow.body),
                                             headers={"Content-Type": "application/json"},
                                             timeout=timeout) as answer:
            if flow.stream and answer.status == 200:
                stream = StreamRelay(api, flow, relay.chain, flow.strip_usage, relay.max_event_bytes,
                                     relay.max_response_bytes, remember)
                return await stream.run(request, answer)
            return await relay_json(answer, api, flow, relay.chain, relay.max_response_bytes, remember)

    app.router.add_post(relay.path, handle)
    return app


@dataclass
class Received:
    status: int
    headers: Any
    body: bytes
    flow: Flow

    def json(self) -> Any:
        return orjson.loads(self.body)


Call = Callable[[Relay, dict[str, Any]], Awaitable[Received]]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    upstream = Upstream()
    app = web.Application()
    app.router.add_post("/{tail:.*}", upstream.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    upstream.url = str(server.make_url("/upstream"))
    yield upstream
    await server.close()


@pytest.fixture
async def rude() -> AsyncIterator[RawUpstream]:
    server = RawUpstream()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    clients: list[TestClient[Any, Any]] = []

    async def send(relay: Relay, body: dict[str, Any]) -> Received:
        app = gateway_app(relay)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        async with asyncio.timeout(WAIT):
            response = await client.post(relay.path, json=body)
            data = await response.read()
            await app[DONE].wait()
        [flow] = app[FLOWS]
        return Received(response.status, response.headers, data, flow)

    yield send
    for client in clients:
        await client.close()


def names_and_objects(body: bytes) -> list[tuple[bytes | None, Any]]:
    return [(n, d if d == b"[DONE]" else orjson.loads(d)) for n, d in decode(body)]


def filtering(*terms: str, holdback: int = 64) -> PolicyChain:
    profile = ContentProfile("p", [BlocklistConfig(type="blocklist", terms=terms)])
    return PolicyChain([ContentFilterPolicy({"d": profile}, holdback)])


# --- whole answers ------------------------------------------------------------------
async def test_a_recorded_answer_passes_through_byte_for_byte(upstream: Upstream, call: Call) -> None:
    answer = raw("azure-openai-chat.json")
    upstream.answer = json_answer(answer, headers={"x-ms-region": "East US", "apim-request-id": "a-1",
                                                   "x-internal": "kept here"})
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url), CHAT_ASK)
    assert got.status == 200 and got.body == answer
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["x-ms-region"] == "East US" and got.headers["apim-request-id"] == "a-1"
    assert "x-internal" not in got.headers
    assert got.flow.usage == Usage(13, 30)
    assert got.flow.output == [] and got.flow.error_code == ""
    assert got.flow.status == 200 and got.flow.upstream_seconds > 0


async def test_an_answer_without_content_type_is_still_json(rude: RawUpstream, call: Call) -> None:
    rude.response = with_length(raw("azure-inference-chat.json"))
    got = await call(Relay(CHAT, CHAT_PATH, rude.url), CHAT_ASK)
    assert got.status == 200 and got.headers["Content-Type"] == "application/json"
    assert got.json() == sample("azure-inference-chat.json")
    assert got.flow.usage == Usage(24, 139)


async def test_an_answer_without_usage_leaves_its_text_to_be_counted(upstream: Upstream, call: Call) -> None:
    answer = sample("azure-inference-chat.json")
    del answer["usage"]
    upstream.answer = json_answer(orjson.dumps(answer))
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url), CHAT_ASK)
    assert got.status == 200 and got.flow.usage is None
    assert "".join(got.flow.answer_texts) == answer["choices"][0]["message"]["content"]


async def test_a_200_holding_an_error_is_an_upstream_error(upstream: Upstream, call: Call) -> None:
    upstream.answer = json_answer(raw("azure-openai-429.json"))
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url), CHAT_ASK)
    assert got.status == 502
    error = got.json()["error"]
    assert error["code"] == "upstream_error"
    assert error["message"].startswith("The upstream answered 200 with an error instead of an answer: "
                                       "Requests to the ChatCompletions_Create Operation")
    assert got.flow.error_code == "upstream_error" and got.flow.usage is None


async def test_a_200_holding_an_anthropic_error_is_an_anthropic_error(upstream: Upstream, call: Call) -> None:
    upstream.answer = json_answer(orjson.dumps(sample("anthropic-error.json")["overloaded_529"]["body"]))
    got = await call(Relay(MESSAGES, MESSAGES_PATH, upstream.url), MESSAGES_ASK)
    assert got.status == 502
    assert got.json()["type"] == "error" and got.json()["error"]["type"] == "api_error"


@pytest.mark.parametrize("body", [b"[1, 2]", b"Service Unavailable", b""])
async def test_a_200_that_is_not_a_json_object(upstream: Upstream, call: Call, body: bytes) -> None:
    upstream.answer = json_answer(body, content_type="text/plain")
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url), CHAT_ASK)
    assert got.status == 502
    assert got.json()["error"]["message"] == \
        "The upstream answered 200 with a body that is not a JSON object."


async def test_an_answer_over_max_response_bytes(upstream: Upstream, call: Call) -> None:
    answer = raw("azure-openai-chat.json")
    upstream.answer = json_answer(answer)
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url, max_response_bytes=len(answer) - 1), CHAT_ASK)
    assert got.status == 502
    assert got.json()["error"]["message"] == \
        f"The upstream answer is larger than the {len(answer) - 1} bytes allowed."
    assert got.flow.error_code == "upstream_error"
    ok = await call(Relay(CHAT, CHAT_PATH, upstream.url, max_response_bytes=len(answer)), CHAT_ASK)
    assert ok.status == 200 and ok.body == answer


async def test_an_upstream_error_in_the_contract_shape_passes_as_it_is(
        upstream: Upstream, call: Call) -> None:
    body = raw("azure-openai-content-filter-400.json")
    upstream.answer = json_answer(body, status=400, headers={"retry-after": "abc", "x-ms-region": "West"})
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url), CHAT_ASK)
    assert got.status == 400 and got.body == body
    assert got.headers["x-ms-region"] == "West" and "retry-after" not in got.headers  # not a number
    assert got.flow.error_code == "" and got.flow.usage is None
    error = sample("anthropic-error.json")["rate_limit_429"]["body"]
    upstream.answer = json_answer(orjson.dumps(error), status=429)
    got = await call(Relay(MESSAGES, MESSAGES_PATH, upstream.url), MESSAGES_ASK)
    assert got.status == 429 and got.json() == error


@pytest.mark.parametrize(("path", "api", "ask"), [(CHAT_PATH, CHAT, CHAT_ASK),
                                                  (MESSAGES_PATH, MESSAGES, MESSAGES_ASK)])
async def test_an_upstream_error_of_another_shape_is_wrapped_in_the_routes(
        upstream: Upstream, call: Call, path: str, api: Api, ask: dict[str, Any]) -> None:
    upstream.answer = json_answer(b"<html>Bad Gateway</html>", status=503, content_type="text/html")
    got = await call(Relay(api, path, upstream.url), ask)
    assert got.status == 503
    message = "The upstream answered HTTP 503: <html>Bad Gateway</html>"
    if api is MESSAGES:
        assert got.json() == {"type": "error", "error": {"type": "overloaded_error", "message": message}}
    else:
        assert got.json()["error"] == {"code": "upstream_error", "message": message,
                                       "type": "server_error", "param": None}
    assert got.flow.error_code == "upstream_error"


@pytest.mark.parametrize("status", [401, 403])
async def test_an_upstream_refusing_the_gateways_credential_is_not_the_callers_fault(
        upstream: Upstream, call: Call, status: int) -> None:
    body = sample("azure-inference-errors.json")["invalid_key_401"]["body"]
    upstream.answer = json_answer(orjson.dumps(body), status=status)
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url), CHAT_ASK)
    assert got.status == 502
    assert "rejected the gateway's credential" in got.json()["error"]["message"]


async def test_policies_that_read_answers_see_and_change_them(upstream: Upstream, call: Call) -> None:
    upstream.answer = json_answer(raw("azure-openai-chat.json"))
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url, chain=filtering("nothing matches this")), CHAT_ASK)
    answer = got.json()
    assert answer["choices"][0]["message"] == sample("azure-openai-chat.json")["choices"][0]["message"]
    assert answer["prompt_filter_results"] == [{"prompt_index": 0, "content_filter_results": {}}]
    blocked = await call(Relay(CHAT, CHAT_PATH, upstream.url, chain=filtering("feelings")), CHAT_ASK)
    choice = blocked.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter" and choice["message"]["content"] == ""
    assert blocked.flow.usage == Usage(13, 30)  # generated, and paid for


async def test_a_stored_response_is_remembered(upstream: Upstream, call: Call) -> None:
    upstream.answer = json_answer(raw("responses-create.json"))
    remembered: list[tuple[str, bool]] = []
    got = await call(Relay(RESPONSES, RESPONSES_PATH, upstream.url, remembered=remembered), RESPONSES_ASK)
    assert got.status == 200
    assert remembered == [(sample("responses-create.json")["id"], False)]
    assert got.flow.usage == Usage(63, 72, reasoning_tokens=29) and not got.flow.pending


async def test_a_background_response_is_pending_and_not_counted(upstream: Upstream, call: Call) -> None:
    queued = {**sample("responses-lifecycle.json")["retrieve"]["body"], "status": "queued", "usage": None}
    upstream.answer = json_answer(orjson.dumps(queued))
    got = await call(Relay(RESPONSES, RESPONSES_PATH, upstream.url), {**RESPONSES_ASK, "background": True})
    assert got.status == 200 and got.flow.pending
    assert got.flow.usage is None and got.flow.output == []


# --- streams ------------------------------------------------------------------------
STREAMED = [
    (CHAT, CHAT_PATH, {**CHAT_ASK, "stream": True, "stream_options": {"include_usage": True}},
     "azure-openai-chat-stream.sse", Usage(22, 28)),
    (CHAT, CHAT_PATH, {**CHAT_ASK, "stream": True, "stream_options": {"include_usage": True}},
     "chat-completions-stream-tool-calls.sse", Usage(76, 24)),
    (CHAT, CHAT_PATH, {**CHAT_ASK, "stream": True, "stream_options": {"include_usage": True}},
     "chat-completions-stream-parallel-tool-calls.sse", Usage(149, 60)),
    (RESPONSES, RESPONSES_PATH, {**RESPONSES_ASK, "stream": True}, "responses-stream.sse", Usage(114, 15)),
    (RESPONSES, RESPONSES_PATH, {**RESPONSES_ASK, "stream": True}, "responses-stream-function-call.sse",
     Usage(75, 155, reasoning_tokens=128)),
    (MESSAGES, MESSAGES_PATH, {**MESSAGES_ASK, "stream": True}, "anthropic-messages-stream.sse",
     Usage(770, 38)),
    (MESSAGES, MESSAGES_PATH, {**MESSAGES_ASK, "stream": True}, "anthropic-messages-stream-tool-use.sse",
     Usage(377, 65)),
    (MESSAGES, MESSAGES_PATH, {**MESSAGES_ASK, "stream": True}, "anthropic-messages-stream-thinking.sse",
     Usage(43, 282)),
]


def generated(api: Api, name: str) -> str:
    """The generated text of a recorded stream, read from its parsed events."""
    out = ""
    for _, event in objects(recorded(name)):
        delta = event.get("delta")
        if isinstance(delta, str):  # Responses
            out += delta
        elif isinstance(delta, dict):  # Anthropic
            out += delta.get("text", "") + delta.get("partial_json", "") + delta.get("thinking", "")
        for choice in event.get("choices", []):  # chat
            part = choice["delta"]
            out += (part.get("content") or "") + "".join(
                c["function"]["arguments"] for c in part.get("tool_calls", []))
    return out


@pytest.mark.parametrize(("api", "path", "ask", "name", "usage"), STREAMED,
                         ids=[s[3] for s in STREAMED])
async def test_a_recorded_stream_reaches_the_client_byte_for_byte(
        upstream: Upstream, call: Call, api: Api, path: str, ask: dict[str, Any], name: str,
        usage: Usage) -> None:
    upstream.answer = sse_answer(raw(name))
    started = asyncio.get_running_loop().time()
    got = await call(Relay(api, path, upstream.url), ask)
    elapsed = asyncio.get_running_loop().time() - started
    assert got.status == 200 and got.body == raw(name)
    for header, value in STREAM_HEADERS.items():
        assert got.headers[header] == value
    flow = got.flow
    assert flow.usage == usage and flow.error_code == ""
    assert flow.ttft is not None and 0 < flow.ttft <= elapsed
    assert unescape(flow.output) == generated(api, name)


async def test_the_usage_only_the_gateway_asked_for_does_not_reach_the_client(
        upstream: Upstream, call: Call) -> None:
    name = "azure-openai-chat-stream.sse"
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url), {**CHAT_ASK, "stream": True})
    assert upstream.bodies[-1]["stream_options"] == {"include_usage": True}  # asked upstream
    events = recorded(name)
    usage_chunk = events[-2][1]
    assert b'"usage":{' in usage_chunk
    assert got.body == b"".join(CHAT.encode(n, d) for n, d in events if d != usage_chunk)
    assert got.flow.usage == Usage(22, 28)  # the gateway still counts it


async def test_a_stream_without_usage_leaves_its_text_to_be_counted(upstream: Upstream, call: Call) -> None:
    name = "azure-openai-stream-filtered.sse"
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url), {**CHAT_ASK, "stream": True})
    assert got.body == raw(name)  # Azure's own filtered ending passes as it came
    assert got.flow.usage is None and unescape(got.flow.output) == "Hello! I"


async def test_a_stream_ending_in_an_error_event_passes_as_it_came(upstream: Upstream, call: Call) -> None:
    name = "responses-error-stream.sse"
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(RESPONSES, RESPONSES_PATH, upstream.url), {**RESPONSES_ASK, "stream": True})
    assert got.status == 200 and got.body == raw(name)
    assert got.flow.usage is None and got.flow.output == []
    # Counted as the upstream's failure (its health, the metrics, the access log).
    assert got.flow.error_code == "upstream_error"


async def test_an_anthropic_error_event_mid_stream_is_the_upstreams_failure(
        upstream: Upstream, call: Call) -> None:
    name = "anthropic-messages-stream-error.sse"
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(MESSAGES, MESSAGES_PATH, upstream.url), {**MESSAGES_ASK, "stream": True})
    assert got.status == 200 and got.flow.error_code == "upstream_error"


async def test_a_stream_without_content_type_is_still_relayed(rude: RawUpstream, call: Call) -> None:
    name = "anthropic-messages-stream.sse"
    rude.response = close_delimited(raw(name), None)
    got = await call(Relay(MESSAGES, MESSAGES_PATH, rude.url), {**MESSAGES_ASK, "stream": True})
    assert got.status == 200 and got.body == raw(name)
    assert got.headers["Content-Type"] == "text/event-stream"
    assert got.flow.usage == Usage(770, 38)


def ends_in_error(body: bytes, api: Api, code: str, message: str) -> list[tuple[bytes | None, Any]]:
    """The events before the last; the last must be this API's error event."""
    *before, (name, error) = names_and_objects(body)
    if api is MESSAGES:
        assert name == b"error" and error["type"] == "error"
        assert error["error"]["message"] == message
    elif api is RESPONSES:
        assert name == b"error" and error["error"]["code"] == code and error["error"]["message"] == message
        assert error["sequence_number"] == (before[-1][1]["sequence_number"] + 1 if before else 0)
    else:
        assert name is None and error["error"]["code"] == code and error["error"]["message"] == message
    return before


@pytest.mark.parametrize(("api", "path", "ask", "name"), [
    (CHAT, CHAT_PATH, {**CHAT_ASK, "stream": True}, "azure-openai-chat-stream.sse"),
    (RESPONSES, RESPONSES_PATH, {**RESPONSES_ASK, "stream": True}, "responses-stream.sse"),
    (MESSAGES, MESSAGES_PATH, {**MESSAGES_ASK, "stream": True}, "anthropic-messages-stream.sse"),
])
async def test_a_stream_cut_mid_event_ends_with_an_error_event(
        upstream: Upstream, call: Call, api: Api, path: str, ask: dict[str, Any], name: str) -> None:
    data = raw(name)
    cut = data.index(b"\n\n", len(data) // 2) + 2 + 30  # 30 bytes into an event
    upstream.answer = sse_answer(data[:cut], then=cut_off)
    got = await call(Relay(api, path, upstream.url), ask)
    assert got.status == 200
    before = ends_in_error(got.body, api, "upstream_error",
                           "The upstream stream failed: ClientPayloadError.")
    complete = decode(data[:cut - 30])  # every whole event, and none of the half one
    assert [d for _, d in decode(got.body)][:-1] == [d for _, d in complete]
    assert len(before) == len(complete)
    assert got.flow.error_code == "upstream_error"
    assert unescape(got.flow.output) == unescape([p for _, d in complete for p in api.output_text(d)])


@pytest.mark.parametrize(("api", "path", "ask", "name"), [
    (CHAT, CHAT_PATH, {**CHAT_ASK, "stream": True}, "azure-openai-chat-stream.sse"),
    (MESSAGES, MESSAGES_PATH, {**MESSAGES_ASK, "stream": True}, "anthropic-messages-stream.sse"),
])
async def test_a_stream_that_ends_mid_event_is_not_a_complete_stream(
        rude: RawUpstream, call: Call, api: Api, path: str, ask: dict[str, Any], name: str) -> None:
    """A body that ends when the socket closes: the end of the body is clean, but its last
    event is half an event. The client must not get half an event as if it were whole, nor
    an end that says the stream is complete."""
    data = raw(name)
    whole = data.index(b"\n\n", len(data) // 2) + 2
    cut = data.index(b"data: ", whole) + 20  # into the next event's JSON
    rude.response = close_delimited(data[:cut], b"text/event-stream")
    got = await call(Relay(api, path, rude.url), ask)
    before = ends_in_error(got.body, api, "upstream_error",
                           "The upstream stream ended in the middle of an event.")
    assert [d for _, d in decode(got.body)][:-1] == [d for _, d in decode(data[:whole])]
    assert len(before) == len(decode(data[:whole]))
    assert b"[DONE]" not in got.body
    assert got.flow.error_code == "upstream_error"


async def test_a_last_event_without_its_blank_line_is_still_an_event(rude: RawUpstream, call: Call) -> None:
    """As recorded streams end (the SwiftAgent recordings had no final blank line): a whole
    last event at the end of the body is relayed."""
    name = "responses-stream.sse"
    data = raw(name)
    rude.response = close_delimited(data.rstrip(b"\n"), b"text/event-stream")
    got = await call(Relay(RESPONSES, RESPONSES_PATH, rude.url), {**RESPONSES_ASK, "stream": True})
    assert got.body == data and got.flow.usage == Usage(114, 15) and got.flow.error_code == ""


@pytest.mark.parametrize(("api", "path", "ask"), [
    (CHAT, CHAT_PATH, {**CHAT_ASK, "stream": True}),
    (RESPONSES, RESPONSES_PATH, {**RESPONSES_ASK, "stream": True}),
    (MESSAGES, MESSAGES_PATH, {**MESSAGES_ASK, "stream": True}),
])
async def test_a_stream_that_is_not_sse(upstream: Upstream, call: Call, api: Api, path: str,
                                        ask: dict[str, Any]) -> None:
    """A JSON answer (here Azure's 429 body, with a 200) where a stream was asked for."""
    upstream.answer = json_answer(raw("azure-openai-429.json"))
    got = await call(Relay(api, path, upstream.url), ask)
    assert got.status == 200
    assert ends_in_error(got.body, api, "upstream_error",
                         "The upstream answered with no event at all (not an event stream).") == []
    assert got.flow.error_code == "upstream_error" and got.flow.ttft is None


async def test_an_event_over_max_event_bytes(upstream: Upstream, call: Call) -> None:
    name = "responses-stream-function-call.sse"
    events = recorded(name)
    largest = max(len(d) for _, d in events)
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(RESPONSES, RESPONSES_PATH, upstream.url, max_event_bytes=largest - 1),
                     {**RESPONSES_ASK, "stream": True})
    *_, (_, error) = names_and_objects(got.body)
    message = error["error"]["message"]  # refused while the line or the event arrives
    assert message in (f"The upstream sent a line longer than {largest - 1} bytes.",
                       f"The upstream sent an event larger than {largest - 1} bytes.")
    before = ends_in_error(got.body, RESPONSES, "upstream_error", message)
    assert [d for _, d in decode(got.body)][:len(before)] == [d for _, d in events][:len(before)]
    assert all(len(d) < largest for _, d in decode(got.body))
    assert got.flow.error_code == "upstream_error"


async def test_a_stream_over_max_response_bytes(upstream: Upstream, call: Call) -> None:
    name = "anthropic-messages-stream.sse"
    limit = len(raw(name)) // 2
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(MESSAGES, MESSAGES_PATH, upstream.url, max_response_bytes=limit),
                     {**MESSAGES_ASK, "stream": True})
    before = ends_in_error(got.body, MESSAGES, "upstream_error",
                           f"The upstream stream is larger than the {limit} bytes allowed.")
    assert sum(len(MESSAGES.encode(n, orjson.dumps(e))) for n, e in before) <= limit
    assert got.flow.error_code == "upstream_error"


async def test_a_stalled_stream_ends_with_a_timeout_event(upstream: Upstream, call: Call) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> None:
        await release.wait()

    first_event = raw("azure-openai-chat-stream.sse").split(b"\n\n")[0] + b"\n\n"
    upstream.answer = sse_answer(first_event, then=stall)
    try:
        got = await call(Relay(CHAT, CHAT_PATH, upstream.url, read_timeout=0.5), {**CHAT_ASK, "stream": True})
    finally:
        release.set()
    ends_in_error(got.body, CHAT, "upstream_timeout", "The upstream stream stalled.")
    assert got.flow.error_code == "upstream_timeout"


async def test_a_stored_stream_is_remembered_before_its_first_event(upstream: Upstream, call: Call) -> None:
    upstream.answer = sse_answer(raw("responses-stream.sse"))
    remembered: list[tuple[str, bool]] = []
    got = await call(Relay(RESPONSES, RESPONSES_PATH, upstream.url, remembered=remembered),
                     {**RESPONSES_ASK, "stream": True})
    assert got.body == raw("responses-stream.sse")
    assert remembered == [("resp_68d93041848c819e90d610c34d125a8f03aa6e5a972b3b23", False)]


# --- streams under a content filter ---------------------------------------------------
@pytest.mark.parametrize(("api", "path", "ask", "name", "usage"), STREAMED,
                         ids=[s[3] for s in STREAMED])
async def test_a_filtered_stream_that_passes_has_every_event_under_its_own_name(
        upstream: Upstream, call: Call, api: Api, path: str, ask: dict[str, Any], name: str,
        usage: Usage) -> None:
    """Text held back and released later still goes out as the event it is: named by its
    own type (Anthropic's SDK dispatches on the name), in the recorded order."""
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(api, path, upstream.url, chain=filtering("xyzzy")), ask)
    received = names_and_objects(got.body)
    expected = [(n, d if d == b"[DONE]" else orjson.loads(d)) for n, d in recorded(name)]
    assert received == expected
    assert got.flow.usage == usage and got.flow.error_code == ""


async def test_a_blocked_chat_stream_ends_as_azure_ends_one(upstream: Upstream, call: Call) -> None:
    name = "azure-openai-chat-stream.sse"
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(CHAT, CHAT_PATH, upstream.url, chain=filtering("assist", holdback=8)),
                     {**CHAT_ASK, "stream": True, "stream_options": {"include_usage": True}})
    *before, (_, blocked), (_, done) = names_and_objects(got.body)
    assert done == b"[DONE]"
    assert blocked["choices"][0]["finish_reason"] == "content_filter"
    assert blocked["choices"][0]["content_filter_results"]["custom_blocklist"]["filtered"] is True
    assert blocked["id"] == "chatcmpl-Aau7xzmYfJIyXvEuPJF4LUW9PUfOW"
    shown = "".join(c["delta"].get("content") or "" for _, e in before for c in e["choices"])
    assert "Ah, greetings. How can I assist you today?".startswith(shown) and "assist" not in shown
    assert got.flow.error_code == "content_filter"


async def test_a_blocked_responses_stream_ends_incomplete(upstream: Upstream, call: Call) -> None:
    name = "responses-stream.sse"
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(RESPONSES, RESPONSES_PATH, upstream.url, chain=filtering("Sunny", holdback=8)),
                     {**RESPONSES_ASK, "stream": True})
    *before, (event_name, incomplete) = names_and_objects(got.body)
    assert event_name == b"response.incomplete" == incomplete["type"].encode()
    assert incomplete["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert incomplete["sequence_number"] == before[-1][1]["sequence_number"] + 1
    assert all(n == e["type"].encode() for n, e in before)
    assert got.flow.error_code == "content_filter"


@pytest.mark.parametrize(("term", "holdback"), [("weather", 64), ("sunny", 8)])
async def test_a_blocked_anthropic_stream_closes_its_block_and_refuses(
        upstream: Upstream, call: Call, term: str, holdback: int) -> None:
    """Blocked before any text was released (the last event the client got is the ping
    after content_block_start) or after some: either way the open block is closed."""
    name = "anthropic-messages-stream.sse"
    upstream.answer = sse_answer(raw(name))
    got = await call(Relay(MESSAGES, MESSAGES_PATH, upstream.url, chain=filtering(term, holdback=holdback)),
                     {**MESSAGES_ASK, "stream": True})
    events = names_and_objects(got.body)
    assert all(n == e["type"].encode() for n, e in events)
    assert [e["type"] for _, e in events[:3]] == ["message_start", "content_block_start", "ping"]
    *before, stop, delta, end = (e for _, e in events)
    assert stop == {"type": "content_block_stop", "index": 0}
    assert delta["delta"]["stop_reason"] == "refusal" and end == {"type": "message_stop"}
    shown = "".join(e["delta"]["text"] for e in before if e["type"] == "content_block_delta")
    assert term not in shown.lower()
    assert (shown == "") == (holdback == 64)
    assert got.flow.error_code == "content_filter"
