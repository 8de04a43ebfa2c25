"""The one forwarding handler: authenticate, read, resolve, enforce, call, relay."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from gateway import upstream
from gateway.backends import Backend
from gateway.errors import UnsupportedOperation, UpstreamError, UpstreamTimeout
from gateway.exchange import Exchange
from gateway.inbound import Inbound, parse, read_json
from gateway.keys import CONTEXT, COOLDOWNS, EXCHANGE, METRICS, RUNTIME, SESSION
from gateway.relay import StreamRelay, relay_json
from gateway.routes import ModelRoute
from gateway.runtime import Deployment
from policies import PolicyChain, RequestContext

# Operations whose streams can carry a usage chunk (stream_options.include_usage).
_USAGE_STREAMS = frozenset({"chat/completions", "completions"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def model_handler(route: ModelRoute) -> Handler:
    operation = route.operation
    from_path = "{deployment}" in route.path

    async def handle(request: web.Request) -> web.StreamResponse:
        ex = request[EXCHANGE]
        runtime = request.app[RUNTIME]
        caller = await runtime.authenticator.authenticate(request.headers)
        ex.consumer = caller.consumer
        if caller.identity:
            ex.identity = " ".join(f"{k}={v}" for k, v in caller.identity)
        body = await read_json(request, runtime.max_body_bytes)
        path_name = request.match_info["deployment"] if from_path else None
        inbound = parse(operation, body, request.headers, path_name, route.model_from_headers)
        deployment = runtime.resolve(inbound.alias, caller)
        ex.deployment = deployment.name
        ex.stream = inbound.stream
        ctx = RequestContext(
            ex.request_id, operation, deployment.name, caller, inbound.body, inbound.stream
        )
        request[CONTEXT] = ctx
        chain = runtime.chain
        inflight = request.app[METRICS].inflight
        labels = (deployment.name,)
        inflight.inc(labels)
        try:
            if chain.looks_at_requests:
                await chain.on_request(ctx)
            return await forward(request, deployment, ctx, inbound, ex, chain)
        except BaseException:
            ctx.disconnected = request.transport is None or request.transport.is_closing()
            raise
        finally:
            inflight.inc(labels, -1)
            if ctx.usage is None and ctx.produced_tokens:
                ex.completion_tokens = ctx.produced_tokens  # a stream cut before its usage
            if chain.looks_at_responses:
                await chain.on_response(ctx)

    return handle


class _Failover(Exception):
    """This backend failed before anything reached the client: try the next one."""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asked us to wait: retry-after-ms first, then retry-after."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


async def forward(
    request: web.Request,
    deployment: Deployment,
    ctx: RequestContext,
    inbound: Inbound,
    ex: Exchange,
    chain: PolicyChain,
) -> web.StreamResponse:
    routing = deployment.config.routing
    strip_usage = False
    if ctx.stream and ctx.operation in _USAGE_STREAMS and not inbound.wants_usage:
        options = ctx.body.get("stream_options")
        ctx.body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                      "include_usage": True}
        strip_usage = True
    now = time.monotonic()
    tries = [b for b in deployment.candidates(now) if ctx.operation in b.urls]
    if not tries:
        if not any(ctx.operation in b.urls for b in deployment.backends):
            apis = ", ".join(sorted({b.api for b in deployment.backends}))
            raise UnsupportedOperation(
                f"No backend of deployment {deployment.name} has a {ctx.operation} operation "
                f"(its backends speak {apis}).")
        raise deployment.nothing_available(now)
    tries = tries[: routing.max_attempts]
    deadline = now + routing.deadline_seconds
    for i, backend in enumerate(tries):
        last = i == len(tries) - 1 or time.monotonic() >= deadline
        backend.health.picked(time.monotonic())
        backend.inflight += 1
        try:
            return await _attempt(request, backend, ctx, ex, chain, strip_usage, routing.retry_on,
                                  last)
        except _Failover:
            continue
        finally:
            backend.inflight -= 1
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _attempt(
    request: web.Request,
    backend: Backend,
    ctx: RequestContext,
    ex: Exchange,
    chain: PolicyChain,
    strip_usage: bool,
    retry_on: tuple[int, ...],
    last: bool,
) -> web.StreamResponse:
    metrics = request.app[METRICS]
    labels = (ctx.deployment, backend.name)
    url = backend.urls[ctx.operation]
    ctx.body["model"] = backend.model
    payload = orjson.dumps(ctx.body)
    ex.backend = backend.name
    health = backend.health
    # A second call only when an Entra token was refused: it may have been revoked
    # before its expiry, and a fresh one is worth one more try.
    for auth_try in (1, 2):
        headers = upstream.forward_headers(request.headers, await backend.auth_headers())
        started = time.perf_counter()
        try:
            async with upstream.call(request.app[SESSION], backend, url, headers, payload) as answer:
                ex.upstream_seconds += time.perf_counter() - started
                status = answer.status
                metrics.upstream_requests.inc((*labels, str(status)))
                if status == 401 and backend.token is not None:
                    backend.token.invalidate()
                    if auth_try == 1:
                        continue
                if status == 429:
                    wait = _retry_after(answer.headers)
                    wait = wait if wait is not None else 1.0
                    health.cool_down(wait)
                    await request.app[COOLDOWNS].publish(ctx.deployment, backend.name, wait)
                elif status >= 500:
                    health.failed(time.monotonic())
                if status in retry_on and not last:
                    raise _Failover
                if status < 429:
                    health.succeeded(time.monotonic())
                    backend.check_spillover(answer.headers)
                if ctx.stream and status == 200 and answer.content_type == "text/event-stream":
                    response = await StreamRelay(ctx, ex, chain, strip_usage).run(request, answer)
                    if ex.error_code.startswith("upstream"):
                        health.failed(time.monotonic())  # broke after the first byte
                        metrics.upstream_requests.inc((*labels, "stream_error"))
                    return response
                return await relay_json(answer, ctx, ex, chain)
        except (UpstreamError, UpstreamTimeout) as exc:
            label = "timeout" if isinstance(exc, UpstreamTimeout) else "error"
            metrics.upstream_requests.inc((*labels, label))
            health.failed(time.monotonic())
            if last:
                raise
            raise _Failover from exc
    raise AssertionError("unreachable: the second auth try returns or raises")
