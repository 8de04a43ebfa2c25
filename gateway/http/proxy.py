"""The one forwarding handler: authenticate, read, resolve, enforce, call, relay.
What depends on the API is asked of the route's adapter (`gateway.apis`)."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from yarl import URL

from gateway.apis import Api, ModelRoute
from gateway.core.errors import (
    InvalidRequest,
    ResponseNotFound,
    UnsupportedOperation,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.core.flow import CONTEXT, EXCHANGE, Exchange
from gateway.core.tokens import TOKENIZER
from gateway.database.engine import DATABASE
from gateway.database.responses import Owner
from gateway.enforcement.accounting import finish
from gateway.enforcement.limiter import LIMITER
from gateway.http.admission import INFLIGHT
from gateway.http.inbound import parse, read_json
from gateway.http.relay import Remember, StreamRelay, relay_json
from gateway.ops.metrics import METRICS
from gateway.ops.telemetry import TELEMETRY
from gateway.runtime.live import LIVE
from gateway.runtime.snapshot import Deployment
from gateway.upstream import client as upstream
from gateway.upstream.backends import Backend
from gateway.upstream.client import SESSION
from gateway.upstream.cooldowns import COOLDOWNS
from policies import PolicyChain, RequestContext
from policies.auth import presented_credentials

log = logging.getLogger("gateway.http.proxy")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Upstream statuses that say the backend, not the request, is at fault: they count
# towards its circuit breaker. Other 4xx (a bad request, one too large, a refused
# prompt) are the caller's and say nothing about the backend's health; 401/403/404
# mean the backend is misconfigured for everyone, and so count.
BACKEND_FAILURES = frozenset({401, 403, 404, 408, 500, 502, 503, 504})


def is_backend_failure(status: int) -> bool:
    return status in BACKEND_FAILURES or (status >= 500 and status != 501)


def model_handler(route: ModelRoute) -> Handler:
    api = route.api
    from_path = "{deployment}" in route.path

    async def handle(request: web.Request) -> web.StreamResponse:
        # One coroutine for the whole way in: each nested one costs a frame and a
        # try/finally on every request.
        app = request.app
        runtime = app[LIVE].runtime
        inflight = app[INFLIGHT]
        inflight.enter(runtime.config.server.max_inflight_requests)
        consumer: str | None = None
        try:
            ex = request[EXCHANGE]
            credentials = presented_credentials(request.headers)
            caller = await runtime.authenticator.authenticate(request.headers, credentials)
            ex.consumer = caller.consumer
            if caller.identity:
                ex.identity = " ".join(f"{k}={v}" for k, v in caller.identity)
            inflight.enter_consumer(caller.consumer, runtime.inflight_cap(caller.consumer))
            consumer = caller.consumer
            body = await read_json(request, runtime.config.server)
            path_name = request.match_info["deployment"] if from_path else None
            inbound = parse(api, body, request.headers, path_name, route.model_from_headers)
            deployment = runtime.resolve(inbound.alias, caller)
            ex.deployment, ex.api = deployment.name, api.name
            ex.stream, ex.alias, ex.operation = inbound.stream, inbound.alias, api.gen_ai_operation
            ctx = RequestContext(ex.request_id, api, deployment.name, caller, inbound.body,
                                 inbound.stream)
            request[CONTEXT] = ctx
            chain = runtime.chain
            gauge = app[METRICS].inflight
            labels = (deployment.name,)
            gauge.inc(labels)
            try:
                if chain.looks_at_requests:
                    await chain.on_request(ctx)
                return await forward(request, api, deployment, ctx, ex, chain, credentials)
            except BaseException:
                ctx.disconnected = request.transport is None or request.transport.is_closing()
                raise
            finally:
                gauge.inc(labels, -1)
                await finish(app[TOKENIZER], app[LIMITER].settlements, api, ctx, ex, chain,
                             deployment.price(ctx.backend))
        finally:
            if consumer is not None:
                inflight.leave_consumer(consumer)
            inflight.leave()

    return handle


class _Failover(Exception):
    """This backend failed before anything reached the client: try the next one."""


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?")


def _duration(value: str) -> float | None:
    """OpenAI's reset times: "6s", "1m30s", "20ms", "2.5s"."""
    match = _DURATION.fullmatch(value.strip())
    if match is None or not any(match.groups()):
        return None
    h, m, sec, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + sec + ms / 1000


def retry_after(headers: Mapping[str, str], ceiling: float) -> float | None:
    """Seconds the upstream asked us to wait: retry-after-ms first, then retry-after, then
    the x-ratelimit-reset-* times. Upstream values are untrusted: nan, inf, negatives
    and non-ASCII digits are ignored, and the wait never exceeds `ceiling` (a huge value
    would disable a backend for good)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if not value or not value.isascii():
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, ceiling)
    resets = [d for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
              if (value := headers.get(name)) and value.isascii() and (d := _duration(value)) is not None]
    return min(max(resets), ceiling) if resets else None


def retry_headers(seconds: float) -> dict[str, str]:
    """Both headers, always: azure-core reads Retry-After (whole seconds), the openai
    and anthropic SDKs prefer retry-after-ms."""
    ms = max(1, math.ceil(seconds * 1000))
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(ms)}


async def forward(
    request: web.Request,
    api: Api,
    deployment: Deployment,
    ctx: RequestContext,
    ex: Exchange,
    chain: PolicyChain,
    credentials: list[str],
) -> web.StreamResponse:
    routing = deployment.config.routing
    strip_usage = ctx.stream and api.ask_stream_usage(ctx.body)
    store = await _continued_store(request, api, deployment, ctx)
    now = time.monotonic()
    tries = [b for b in deployment.candidates(now)
             if api.operation in b.urls and (store is None or b.store_key == store)]
    if not tries:
        if not any(api.operation in b.urls for b in deployment.backends):
            apis = ", ".join(sorted({b.api for b in deployment.backends}))
            raise UnsupportedOperation(
                f"No backend of deployment {deployment.name} serves {api.name} "
                f"(its backends speak {apis}).")
        raise deployment.nothing_available(now)
    tries = tries[: routing.max_attempts]
    deadline = now + routing.deadline_seconds
    for i, backend in enumerate(tries):
        last = i == len(tries) - 1 or time.monotonic() >= deadline
        backend.health.picked(time.monotonic())
        backend.inflight += 1
        try:
            return await _attempt(request, api, backend, ctx, ex, chain, strip_usage,
                                  routing.retry_on, last, credentials)
        except _Failover:
            continue
        finally:
            backend.inflight -= 1
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _continued_store(request: web.Request, api: Api, deployment: Deployment,
                           ctx: RequestContext) -> str | None:
    """A request that continues a stored response (previous_response_id) can only go to
    the upstream store that holds it; None when it continues nothing."""
    previous = api.previous_response(ctx.body)
    if previous is None:
        return None
    owner = await request.app[DATABASE].responses.owner(previous)
    if owner is None or owner.consumer != ctx.caller.consumer:
        raise ResponseNotFound(f"Previous response with id '{previous}' not found.",
                               param="previous_response_id")
    if not any(b.store_key == owner.store_key for b in deployment.backends):
        raise InvalidRequest(
            f"Previous response '{previous}' is stored by an upstream that deployment "
            f"{deployment.name} does not use; continue it with the model that created it.",
            param="previous_response_id")
    return owner.store_key


def _rememberer(request: web.Request, api: Api, backend: Backend,
                ctx: RequestContext) -> Remember | None:
    """What records the owner of a response the upstream will store."""
    if not api.stores(ctx.body):
        return None
    owners = request.app[DATABASE].responses
    owner = Owner(ctx.caller.consumer, ctx.deployment, backend.name, backend.store_key)

    async def remember(ident: str) -> None:
        try:
            await owners.remember(ident, owner)
        except SQLAlchemyError as exc:
            # The answer was generated (and paid for): it still goes out, but following
            # it up through the gateway will not work.
            log.error("owner of stored response %s not recorded: %s", ident, type(exc).__name__)

    return remember


async def _attempt(
    request: web.Request,
    api: Api,
    backend: Backend,
    ctx: RequestContext,
    ex: Exchange,
    chain: PolicyChain,
    strip_usage: bool,
    retry_on: tuple[int, ...],
    last: bool,
    credentials: list[str],
) -> web.StreamResponse:
    app = request.app
    metrics = app[METRICS]
    runtime = app[LIVE].runtime
    server = runtime.config.server
    labels = (ctx.deployment, backend.name)
    url = backend.urls[api.operation]
    ctx.body["model"] = backend.body_model(api.operation)
    remember = _rememberer(request, api, backend, ctx)
    payload = orjson.dumps(ctx.body)
    ex.backend = ctx.backend = backend.name
    ex.backend_api = backend.api
    telemetry = app.get(TELEMETRY) if ex.span is not None else None
    health = backend.health
    # A second call only when an Entra token was refused: it may have been revoked
    # before its expiry, and a fresh one is worth one more try.
    for auth_try in (1, 2):
        headers = upstream.forward_headers(request.headers, await backend.auth_headers(),
                                           backend.defaults, runtime.headers, credentials)
        started = time.perf_counter()
        outcome = "error"  # what this call is counted as, once, when it is over
        judged = False  # the breaker has heard about this call
        span = None
        if telemetry is not None:
            target = URL(url)
            span = telemetry.start_call(ex, backend.api, backend.name, ctx.body["model"],
                                        target.host or "", target.port, headers)
        try:
            async with upstream.call(app[SESSION], backend, url, headers, payload) as answer:
                ex.upstream_seconds += time.perf_counter() - started
                status = answer.status
                outcome = str(status)
                if status == 401 and backend.token is not None:
                    backend.token.invalidate()
                    if auth_try == 1:
                        continue
                passed: dict[str, str] = {}
                if status == 429:
                    wait = retry_after(answer.headers, backend.max_cooldown)
                    wait = min(1.0, backend.max_cooldown) if wait is None else wait
                    health.cool_down(wait)
                    await app[COOLDOWNS].publish(ctx.deployment, backend.name, wait)
                    passed = retry_headers(wait)
                    judged = True
                elif is_backend_failure(status) or not _answer_status(status):
                    health.failed(time.monotonic(), f"HTTP {status}")
                    judged = True
                if status in retry_on and not last:
                    raise _Failover
                if not _answer_status(status):
                    raise UpstreamError(
                        f"The upstream {backend.name} answered HTTP {status}, which is not an "
                        "answer (redirects are not followed).")
                if not judged:
                    health.succeeded(time.monotonic())
                    backend.check_spillover(answer.headers)
                if ctx.stream and status == 200:
                    # A stream, whatever the upstream's Content-Type says: some
                    # Azure-compatible servers send none.
                    relay = StreamRelay(api, ctx, ex, chain, strip_usage, server.max_event_bytes,
                                        server.max_response_bytes, remember)
                    response = await relay.run(request, answer)
                    if ex.error_code.startswith("upstream"):
                        health.failed(time.monotonic(), "the stream broke off")
                        outcome = "stream_error"
                    return response
                return await relay_json(answer, api, ctx, ex, chain, server.max_response_bytes,
                                        remember, passed)
        except (UpstreamError, UpstreamTimeout) as exc:
            if outcome in ("error", "200"):  # no answer, or a 200 whose body failed
                outcome = "timeout" if isinstance(exc, UpstreamTimeout) else "error"
                health.failed(time.monotonic(), outcome)
            if last:
                raise
            raise _Failover from exc
        finally:
            metrics.upstream_requests.inc((*labels, outcome))
            if span is not None:
                assert telemetry is not None
                telemetry.end_call(span, outcome, time.perf_counter() - started)
    raise AssertionError("unreachable: the second auth try returns or raises")


def _answer_status(status: int) -> bool:
    """200, or an error the client may be shown: anything else is not an answer."""
    return status == 200 or 400 <= status <= 599
