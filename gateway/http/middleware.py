"""The request-wide frame: request id, the request's Flow, errors in the contract's
JSON shape (never a traceback), then metrics and the access-log line."""

from __future__ import annotations

import asyncio
import logging
import re
import time

from aiohttp import web

from gateway.core.errors import (
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    RouteNotFound,
    error_code,
    error_response,
)
from gateway.core.flavours import Flavour, flavour_of_path
from gateway.core.flow import FLOW, Flow
from gateway.core.replies import request_id
from gateway.http.admission import Handler
from gateway.http.connections import FIXED_HEADERS, GatewayProtocol
from gateway.ops.accesslog import ACCESS_LOG
from gateway.ops.metrics import METRICS
from gateway.ops.telemetry import TELEMETRY
from gateway.team.ledger import LEDGER
from policies import PolicyError, RateLimited

log = logging.getLogger("gateway")

# Status recorded when the client went away before the response was complete.
CLIENT_CLOSED = 499


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def flow(request: web.Request, handler: Handler) -> web.StreamResponse:
    ex = Flow(request_id(), _route(request), time.perf_counter(), flavour_of_path(request.path))
    request[FLOW] = ex
    telemetry = request.app.get(TELEMETRY)
    if telemetry is not None:
        telemetry.start_request(request, ex)
    protocol = request.protocol
    if isinstance(protocol, GatewayProtocol):
        protocol.request_started()  # the headers are in: the header timer stops
    try:
        response = await _answer(request, handler, ex)
    except (asyncio.CancelledError, ConnectionResetError):
        ex.status = CLIENT_CLOSED
        raise
    else:
        ex.status = response.status
        return response
    finally:
        if isinstance(protocol, GatewayProtocol):
            protocol.request_finished()
        elapsed = time.perf_counter() - ex.started
        app = request.app

        def record(_: object = None) -> None:
            app[METRICS].observe(ex, elapsed)
            app[ACCESS_LOG].emit(ex, elapsed)
            if ex.api_name and LEDGER in app:
                app[LEDGER].record(ex)  # the same figures as the metrics
            if ex.span is not None:
                app[TELEMETRY].end_request(ex, elapsed)

        if ex.finishing is not None and not ex.finishing.done():
            ex.finishing.add_done_callback(record)
        else:
            record()


async def _answer(request: web.Request, handler: Handler, ex: Flow) -> web.StreamResponse:
    try:
        return await handler(request)
    except (GatewayError, PolicyError) as exc:
        error: GatewayError | PolicyError = exc
    except web.HTTPMethodNotAllowed:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.path}.")
    except web.HTTPNotFound:
        error = RouteNotFound(f"No route {request.method} {request.path} on this gateway.")
    except web.HTTPException as exc:
        error = InvalidRequest(exc.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unexpected error serving request %s", ex.request_id)
        error = InternalError(f"The gateway failed to serve this request (id {ex.request_id}).")
    if isinstance(error, RateLimited):
        request.app[METRICS].ratelimit_rejections.inc(
            (ex.deployment, ex.consumer, error.scope, error.limit))
        ex.ratelimit = f"rejected: {error.scope} {error.limit}"
    ex.error_code = error_code(error, ex.flavour)
    return error_response(error, ex.flavour)


# What a client's x-ms-client-request-id may be to be echoed: a GUID or similar id.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


async def request_id_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, error or stream, names its request."""
    headers = response.headers
    headers.update(FIXED_HEADERS)
    client_id = request.headers.get("x-ms-client-request-id")
    if client_id and _CLIENT_ID.fullmatch(client_id):
        headers["x-ms-client-request-id"] = client_id
    ex = request.get(FLOW)
    if ex is None:
        return
    headers["x-request-id"] = ex.request_id
    if ex.flavour is Flavour.ANTHROPIC:
        headers["request-id"] = ex.request_id  # where the anthropic SDK looks
    if ex.response_headers:
        for name, value in ex.response_headers.items():
            # The tightest of the upstream's and the gateway's own remaining counts.
            theirs = headers.get(name)
            if theirs is not None and theirs.isdigit() and value.isdigit():
                value = str(min(int(theirs), int(value)))
            headers[name] = value
