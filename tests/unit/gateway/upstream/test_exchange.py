"""The one upstream exchange (gateway.upstream.exchange) against real loopback upstreams:
backends built with build_backend from real BackendConfigs, the production Calls
(proxy.ModelCall for a model request, stored.StoredCall for a stored response), the
gateway's own request middleware and upstream session, and a real client. Asserted:
which backends were called and in what order, what the client got, each backend's
health (breaker, cooldown), and the upstream-requests metric."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.apis import Api
from gateway.apis.chat import CHAT
from gateway.config import BackendConfig, BreakerConfig, GatewayConfig, RoutingConfig
from gateway.core.flow import FLOW, Flow
from gateway.http.middleware import flow as flow_middleware
from gateway.http.proxy import ModelCall
from gateway.http.stored import STORED, StoredCall
from gateway.ops.accesslog import ACCESS_LOG, AccessLog
from gateway.ops.metrics import METRICS, Metrics
from gateway.runtime.live import LIVE, Live
from gateway.upstream.backends import Backend, build_backend
from gateway.upstream.client import HeaderPolicy, session_ctx
from gateway.upstream.cooldowns import CHANNEL, COOLDOWNS, CooldownBus
from gateway.upstream.credentials import Credentials
from gateway.upstream.exchange import Call, exchange
from policies import PolicyChain, Usage
from tests.samples import raw, sample

WAIT = 30.0
ASK: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "Hello"}]}
ANSWER = raw("azure-openai-chat.json")
BUSY = orjson.dumps(sample("azure-openai-429.json"))


def gateway_config() -> GatewayConfig:
    """A config for what ModelCall and StoredCall read of it: the server's limits."""
    return GatewayConfig(server={"host": "127.0.0.1"}, auth={"allow_anonymous": True}, deployments=[
        {"name": "d", "model": "gpt-4o",
         "backends": [{"url": "http://127.0.0.1:1/v1", "provider": "openai"}]}])


# --- upstreams ----------------------------------------------------------------------
@dataclass
class Reply:
    status: int = 200
    body: bytes = ANSWER
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    before: Callable[[], Awaitable[object]] | None = None  # what the upstream waits for first
    cut_after: bytes | None = None  # a stream: these bytes, then the connection drops


class Upstream:
    """One backend's server. It answers with `replies` in turn (the last one repeats) and
    notes each call, in a list all upstreams of a test share."""

    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name, self.calls = name, calls
        self.replies: list[Reply] = [Reply()]
        self.authorizations: list[str] = []
        self.server: TestServer | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append((self.name, f"{request.method} {request.path}"))
        self.authorizations.append(request.headers.get("Authorization", ""))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if reply.before is not None:
            await reply.before()
        if reply.cut_after is not None:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(reply.cut_after)
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=reply.body, status=reply.status, headers=reply.headers,
                            content_type=reply.content_type)


class Published:
    """What the cooldown bus sends its Redis client: `publish(channel, message)`."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def publish(self, channel: str, message: bytes) -> None:
        assert channel == CHANNEL
        self.messages.append(orjson.loads(message))

    async def aclose(self) -> None:
        pass


# --- the gateway side ---------------------------------------------------------------
FLOWS = web.AppKey("test_flows", list)
DONE = web.AppKey("test_done", asyncio.Event)


@web.middleware
async def finished(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)  # type: ignore[no-any-return]
    finally:
        request.app[DONE].set()


@dataclass
class Got:
    status: int
    headers: Any
    body: bytes
    flow: Flow
    metric: dict[tuple[str, ...], float]

    def json(self) -> Any:
        return orjson.loads(self.body)


class Gateway:
    """The app that runs `exchange` over the test's backends, and what it used."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.published = Published()
        self.clients: list[TestClient[Any, Any]] = []

    def backend(self, upstream: Upstream, breaker: BreakerConfig | None = None, **config: Any) -> Backend:
        settings = BackendConfig(url=upstream.url + "/v1", provider="openai", name=upstream.name, **config)
        return build_backend(settings, "gpt-4o", self.credentials, f"backend {upstream.name}",
                             breaker or BreakerConfig())

    async def send(self, tries: list[Backend], routing: RoutingConfig | None = None,
                   call: Call | None = None, path: str = "/v1/chat/completions",
                   body: dict[str, Any] | None = None, method: str = "POST", api: Api = CHAT) -> Got:
        routing = routing or RoutingConfig()
        call = call or ModelCall(CHAT)
        app = web.Application(middlewares=[finished, flow_middleware])
        app[METRICS] = metrics = Metrics()
        app[ACCESS_LOG] = AccessLog(io.BytesIO())
        app[COOLDOWNS] = CooldownBus(self.published)
        app[LIVE] = Live(gateway_config())
        app[FLOWS] = []
        app[DONE] = asyncio.Event()
        app.cleanup_ctx.append(session_ctx)

        async def handle(request: web.Request) -> web.StreamResponse:
            flow: Flow = request[FLOW]
            request.app[FLOWS].append(flow)
            flow.api, flow.deployment, flow.chain = api, "d", PolicyChain()
            flow.body = await request.json() if request.can_read_body else {}
            flow.stream = api.is_stream(flow.body)
            return await exchange(request, flow, call, tries, routing, HeaderPolicy())

        app.router.add_route(method, path, handle)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        self.clients.append(client)
        async with asyncio.timeout(WAIT):
            response = await client.request(method, path, json=(body or ASK) if method == "POST" else None)
            data = await response.read()
            await app[DONE].wait()
        [flow] = app[FLOWS]
        return Got(response.status, response.headers, data, flow, dict(metrics.upstream_requests.values))


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[str], Awaitable[Upstream]]]:
    calls: list[tuple[str, str]] = []
    started: list[TestServer] = []

    async def make(name: str) -> Upstream:
        upstream = Upstream(name, calls)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", upstream.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        started.append(server)
        upstream.server, upstream.url = server, str(server.make_url("")).rstrip("/")
        return upstream

    yield make
    for server in started:
        await server.close()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    credentials = Credentials()
    gw = Gateway(credentials)
    yield gw
    for client in gw.clients:
        await client.close()
    await credentials.close()


def order(*upstreams: Upstream) -> list[str]:
    return [name for name, _ in upstreams[0].calls]


# --- failover -----------------------------------------------------------------------
async def test_backends_are_tried_in_the_order_given(servers: Any, gateway: Gateway) -> None:
    a, b, c = await servers("a"), await servers("b"), await servers("c")
    a.replies = [Reply(500, b'{"error":{"message":"boom"}}')]
    b.replies = [Reply(503, BUSY)]
    got = await gateway.send([gateway.backend(x) for x in (a, b, c)])
    assert got.status == 200 and got.body == ANSWER
    assert order(a) == ["a", "b", "c"]
    assert got.flow.backend == "c" and got.flow.usage == Usage(13, 30)
    assert got.metric == {("d", "a", "500"): 1, ("d", "b", "503"): 1, ("d", "c", "200"): 1}


async def test_at_most_max_attempts_and_the_last_failure_is_the_clients(
        servers: Any, gateway: Gateway) -> None:
    ups = [await servers(n) for n in "abc"]
    for i, up in enumerate(ups):
        up.replies = [Reply(503, orjson.dumps({"error": {"code": "busy", "message": f"backend {i}"}}))]
    backends = [gateway.backend(u) for u in ups]
    got = await gateway.send(backends, RoutingConfig(max_attempts=2))
    assert order(*ups) == ["a", "b"]
    assert got.status == 503 and got.json()["error"]["message"] == "backend 1"
    assert got.metric == {("d", "a", "503"): 1, ("d", "b", "503"): 1}
    assert [b.health.failures for b in backends] == [1, 1, 0]
    assert [b.inflight for b in backends] == [0, 0, 0]


async def test_a_status_not_in_retry_on_is_the_answer(servers: Any, gateway: Gateway) -> None:
    a, b = await servers("a"), await servers("b")
    bad = raw("azure-openai-content-filter-400.json")
    a.replies = [Reply(400, bad)]
    got = await gateway.send([gateway.backend(a), gateway.backend(b)])
    assert order(a) == ["a"] and got.status == 400 and got.body == bad
    assert got.metric == {("d", "a", "400"): 1}


async def test_an_unreachable_backend_is_skipped(servers: Any, gateway: Gateway) -> None:
    a, b = await servers("a"), await servers("b")
    dead = gateway.backend(a)
    assert a.server is not None
    await a.server.close()  # nothing listens there any more
    got = await gateway.send([dead, gateway.backend(b)])
    assert got.status == 200 and order(b) == ["b"]
    assert got.metric == {("d", "a", "error"): 1, ("d", "b", "200"): 1}
    assert dead.health.failures == 1


async def test_a_backend_that_does_not_answer_in_time_is_skipped(servers: Any, gateway: Gateway) -> None:
    a, b = await servers("a"), await servers("b")
    never = asyncio.Event()
    a.replies = [Reply(before=never.wait)]
    slow = gateway.backend(a, timeouts={"response": 0.3})
    try:
        got = await gateway.send([slow, gateway.backend(b)])
    finally:
        never.set()
    assert got.status == 200 and order(a) == ["a", "b"]
    assert got.metric == {("d", "a", "timeout"): 1, ("d", "b", "200"): 1}
    assert slow.health.failures == 1 and slow.health.last_error == "timeout"


async def test_a_200_whose_body_is_an_error_fails_over(servers: Any, gateway: Gateway) -> None:
    a, b = await servers("a"), await servers("b")
    a.replies = [Reply(200, BUSY)]
    first = gateway.backend(a)
    got = await gateway.send([first, gateway.backend(b)])
    assert got.status == 200 and got.body == ANSWER and order(a) == ["a", "b"]
    assert got.metric == {("d", "a", "error"): 1, ("d", "b", "200"): 1}
    assert first.health.failures == 1


async def test_no_try_starts_after_the_deadline(servers: Any, gateway: Gateway) -> None:
    """The first backend fails after the deadline has passed: its failure is the answer,
    the second is never called."""
    deadline = 0.2
    a, b = await servers("a"), await servers("b")

    async def slow() -> None:  # the upstream takes longer than the whole deadline
        await asyncio.sleep(deadline * 2)

    a.replies = [Reply(503, orjson.dumps({"error": {"code": "busy", "message": "late"}}), before=slow)]
    got = await gateway.send([gateway.backend(a), gateway.backend(b)],
                             RoutingConfig(deadline_seconds=deadline))
    assert order(a) == ["a"]
    assert got.status == 503 and got.json()["error"]["message"] == "late"
    assert got.metric == {("d", "a", "503"): 1}


async def test_a_timeout_after_the_deadline_is_the_clients_error(servers: Any, gateway: Gateway) -> None:
    """The first backend times out after the deadline: a 504, and the second is never
    tried. Its timeout is long beside the deadline, so that on a busy machine too the
    request has reached it before the timeout fires."""
    a, b = await servers("a"), await servers("b")
    never = asyncio.Event()
    a.replies = [Reply(before=never.wait)]
    try:
        got = await gateway.send([gateway.backend(a, timeouts={"response": 1.5}), gateway.backend(b)],
                                 RoutingConfig(deadline_seconds=0.2))
    finally:
        never.set()
    assert order(a) == ["a"] and got.status == 504  # the calls of both, in order
    assert got.json()["error"]["code"] == "upstream_timeout"
    assert got.metric == {("d", "a", "timeout"): 1}


# --- 429 cooldowns ------------------------------------------------------------------
@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # milliseconds win
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "99999"}, 30.0),  # an absurd wait is capped by max_cooldown_seconds
    # untrusted values are ignored; then OpenAI's reset times, the later of the two
    ({"retry-after-ms": "nan", "retry-after": "-5", "x-ratelimit-reset-tokens": "6s",
      "x-ratelimit-reset-requests": "120ms"}, 6.0),
    ({"x-ratelimit-reset-tokens": "1m30s"}, 30.0),
    ({}, 1.0),  # none said: a second
])
async def test_a_429_cools_the_backend_down_for_what_it_said(
        servers: Any, gateway: Gateway, headers: dict[str, str], seconds: float) -> None:
    a, b = await servers("a"), await servers("b")
    a.replies = [Reply(429, BUSY, headers=headers)]
    throttled = gateway.backend(a, max_cooldown_seconds=30)
    before = time.monotonic()
    got = await gateway.send([throttled, gateway.backend(b)])
    after = time.monotonic()
    assert got.status == 200 and order(a) == ["a", "b"]
    health = throttled.health
    assert before + seconds <= health.cooldown_until <= after + seconds
    assert gateway.published.messages == [{"o": gateway.published.messages[0]["o"], "d": "d", "b": "a",
                                           "s": seconds}]
    assert health.cooled_by_429 and health.failures == 0 and health.state(after) == "closed"
    assert not health.available(after)
    assert got.metric == {("d", "a", "429"): 1, ("d", "b", "200"): 1}


async def test_a_429_from_the_last_backend_reaches_the_client_with_the_wait(
        servers: Any, gateway: Gateway) -> None:
    a = await servers("a")
    a.replies = [Reply(429, BUSY, headers={"retry-after-ms": "1500", "retry-after": "9"})]
    got = await gateway.send([gateway.backend(a)])
    assert got.status == 429 and got.body == BUSY
    # the wait the gateway went by, once: not the upstream's second, disagreeing, header
    assert got.headers.getall("retry-after-ms") == ["1500"] and got.headers.getall("Retry-After") == ["2"]


# --- the breaker --------------------------------------------------------------------
@pytest.mark.parametrize(("status", "counts"), [
    (401, True), (403, True), (404, True), (408, True), (500, True), (502, True), (503, True),
    (504, True), (529, True), (505, True), (302, True),
    (400, False), (409, False), (413, False), (422, False), (429, False), (501, False),
])
async def test_which_statuses_count_against_the_breaker(
        servers: Any, gateway: Gateway, status: int, counts: bool) -> None:
    a = await servers("a")
    a.replies = [Reply(status, orjson.dumps({"error": {"code": str(status), "message": "x"}}),
                       headers={"Location": "/elsewhere"} if status == 302 else {})]
    backend = gateway.backend(a, breaker=BreakerConfig(failures=1))
    got = await gateway.send([backend])
    now = time.monotonic()
    assert backend.health.failures == (1 if counts else 0)
    assert backend.health.state(now) == ("open" if counts else "closed")
    assert got.metric == {("d", "a", str(status)): 1}
    assert len(a.calls) == 1


async def test_a_missing_stored_response_is_an_answer_not_a_broken_backend(
        servers: Any, gateway: Gateway) -> None:
    a = await servers("a")
    gone = orjson.dumps({"error": {"message": "Response with id 'resp_1' not found.",
                                   "type": "invalid_request_error", "param": None, "code": None}})
    a.replies = [Reply(404, gone)]
    backend = gateway.backend(a, breaker=BreakerConfig(failures=1))
    got = await gateway.send([backend], RoutingConfig(max_attempts=1), call=StoredCall("GET", "/resp_1", ""),
                             path="/v1/responses/resp_1", method="GET", api=STORED)
    assert got.status == 404 and got.body == gone
    assert a.calls == [("a", "GET /v1/responses/resp_1")]
    assert backend.health.failures == 0 and backend.health.state(time.monotonic()) == "closed"
    assert got.metric == {("d", "a", "404"): 1}
    model = gateway.backend(a, breaker=BreakerConfig(failures=1))  # a model call: misconfigured
    await gateway.send([model])
    assert model.health.failures == 1


async def test_a_stream_that_breaks_off_counts_once_as_a_stream_error(servers: Any, gateway: Gateway) -> None:
    """Its first events reached the client: no failover, one failure, one metric."""
    a, b = await servers("a"), await servers("b")
    stream = raw("azure-openai-chat-stream.sse")
    a.replies = [Reply(cut_after=stream[: len(stream) // 2])]
    backend = gateway.backend(a)
    got = await gateway.send([backend, gateway.backend(b)],
                             body={**ASK, "stream": True, "stream_options": {"include_usage": True}})
    assert got.status == 200 and order(a) == ["a"]
    *_, last = got.body.rstrip(b"\n").split(b"\n\n")
    assert orjson.loads(last.removeprefix(b"data: "))["error"]["code"] == "upstream_error"
    assert got.metric == {("d", "a", "stream_error"): 1}
    assert backend.health.failures == 1 and backend.health.last_error == "the stream broke off"


# --- Entra ------------------------------------------------------------------------
class TokenService:
    """An App Service-style managed-identity endpoint, as azure-identity calls it."""

    def __init__(self) -> None:
        self.fetches = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"access_token": f"mi-token-{self.fetches}", "token_type": "Bearer",
                                  "expires_on": str(int(time.time()) + 3600),
                                  "resource": request.query["resource"]})


@pytest.fixture
async def token_service(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TokenService]:
    service = TokenService()
    app = web.Application()
    app.router.add_get("/msi/token", service.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    monkeypatch.setenv("IDENTITY_ENDPOINT", str(server.make_url("/msi/token")))
    monkeypatch.setenv("IDENTITY_HEADER", "identity-header")
    yield service
    await server.close()


ENTRA: dict[str, Any] = {"auth": {"type": "entra", "credential": "managed-identity"}}
REFUSED = orjson.dumps(sample("azure-inference-errors.json")["invalid_bearer_401"]["body"])


async def test_an_entra_401_is_retried_once_with_a_fresh_token(
        servers: Any, gateway: Gateway, token_service: TokenService) -> None:
    a = await servers("a")
    a.replies = [Reply(401, REFUSED), Reply()]  # the first token was revoked
    backend = gateway.backend(a, breaker=BreakerConfig(failures=1), **ENTRA)
    got = await gateway.send([backend, gateway.backend(await servers("b"))])
    assert got.status == 200 and got.body == ANSWER
    assert a.authorizations == ["Bearer mi-token-1", "Bearer mi-token-2"]
    assert token_service.fetches == 2 and order(a) == ["a", "a"]
    assert got.metric == {("d", "a", "401"): 1, ("d", "a", "200"): 1}
    assert backend.health.failures == 0


async def test_an_entra_token_refused_twice_is_the_gateways_fault(
        servers: Any, gateway: Gateway, token_service: TokenService) -> None:
    a = await servers("a")
    a.replies = [Reply(401, REFUSED)]
    backend = gateway.backend(a, **ENTRA)
    got = await gateway.send([backend])
    assert got.status == 502 and "rejected the gateway's credential" in got.json()["error"]["message"]
    assert a.authorizations == ["Bearer mi-token-1", "Bearer mi-token-2"]
    assert got.metric == {("d", "a", "401"): 2}
    assert backend.health.failures == 1


async def test_a_key_refused_is_not_retried(servers: Any, gateway: Gateway,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BACKEND_KEY", "upstream-secret")
    a, b = await servers("a"), await servers("b")
    a.replies = [Reply(401, REFUSED)]
    keyed = gateway.backend(a, auth={"type": "api-key", "key_env": "TEST_BACKEND_KEY"})
    got = await gateway.send([keyed, gateway.backend(b)])
    assert a.authorizations == ["Bearer upstream-secret"]  # once
    assert got.status == 200 and order(a) == ["a", "b"]  # the next backend answered
    assert got.metric == {("d", "a", "401"): 1, ("d", "b", "200"): 1}
    assert keyed.health.failures == 1
