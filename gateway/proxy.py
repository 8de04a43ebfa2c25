"""The one forwarding handler: authenticate, read, resolve, enforce, call, relay."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from gateway import upstream
from gateway.errors import UnsupportedOperation, UpstreamError, UpstreamTimeout
from gateway.exchange import Exchange
from gateway.inbound import Inbound, parse, read_json
from gateway.keys import CONTEXT, EXCHANGE, METRICS, RUNTIME, SESSION
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


async def forward(
    request: web.Request,
    deployment: Deployment,
    ctx: RequestContext,
    inbound: Inbound,
    ex: Exchange,
    chain: PolicyChain,
) -> web.StreamResponse:
    # Failover across candidates comes with the routing issue; today: the first.
    backend = deployment.candidates()[0]
    url = backend.urls.get(ctx.operation)
    if url is None:
        raise UnsupportedOperation(
            f"Deployment {deployment.name} is served by an {backend.api} backend, "
            f"which has no {ctx.operation} operation."
        )
    body = ctx.body
    body["model"] = backend.model
    strip_usage = False
    if ctx.stream and ctx.operation in _USAGE_STREAMS and not inbound.wants_usage:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                  "include_usage": True}
        strip_usage = True
    payload = orjson.dumps(body)
    ex.backend = backend.name
    metrics = request.app[METRICS]
    # A second try only when an Entra token was refused: it may have been revoked or
    # rotated before its expiry, and a fresh one is worth one more call.
    for attempt in (1, 2):
        headers = upstream.forward_headers(request.headers, await backend.auth_headers())
        started = time.perf_counter()
        try:
            async with upstream.call(request.app[SESSION], backend, url, headers, payload) as answer:
                ex.upstream_seconds += time.perf_counter() - started
                metrics.upstream_requests.inc((deployment.name, backend.name, str(answer.status)))
                if answer.status == 401 and backend.token is not None:
                    backend.token.invalidate()
                    if attempt == 1:
                        continue
                is_stream = answer.content_type == "text/event-stream"
                if ctx.stream and answer.status == 200 and is_stream:
                    relay = StreamRelay(ctx, ex, chain, strip_usage)
                    return await relay.run(request, answer)
                return await relay_json(answer, ctx, ex)
        except (UpstreamError, UpstreamTimeout) as exc:
            label = "timeout" if isinstance(exc, UpstreamTimeout) else "error"
            metrics.upstream_requests.inc((deployment.name, backend.name, label))
            raise
    raise AssertionError("unreachable: the second attempt always returns or raises")
