"""Client connections: how long a client may take, how many may be open, and what
a client gets when it sends something that is not HTTP.

aiohttp's protocol (`web.RequestHandler`) with three additions:
- a header timeout: a new connection, or the first byte of a request on a kept-alive
  one, must be followed by complete headers within `header_timeout_seconds`, so a
  client trickling bytes (slowloris) cannot keep a connection; an idle kept-alive
  connection is closed after `keepalive_seconds` (aiohttp's own timer);
- a cap on open connections: one over it is answered 503 and closed at once;
- parser errors (bad bytes, headers too large, bad chunks, smuggling shapes) in the
  contract's JSON error shape with a request id, never quoting what was sent.

The body timeout and the in-flight caps are per request, in `inbound` and
`admission`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_request import BaseRequest

from gateway.core.errors import (
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    RequestTimeout,
    Unavailable,
    render_error,
)
from gateway.core.flavours import flavour_of_path
from gateway.core.replies import request_id
from gateway.http.aiohttp_internals import ignore_further_input, site_runner, start_site
from policies.retry import retry_headers

log = logging.getLogger("gateway.http.connections")

LINGER_S = 1.0  # after a 408 for slow headers, how long the connection drains before closing

# On every answer: no version banner, no content sniffing, no caching of API answers.
FIXED_HEADERS = {"Server": "model-gateway", "X-Content-Type-Options": "nosniff",
                 "Cache-Control": "no-store"}


@dataclass
class Connections:
    """Settings and the live count, shared by every connection of one listener."""

    header_timeout: float
    max_connections: int
    open: int = 0
    refused: int = 0  # connections over the cap
    header_timeouts: int = 0


def _raw_response(error: GatewayError, path: str) -> bytes:
    """A whole HTTP response written straight to the socket: for a connection that has
    no request aiohttp could hand to the app."""
    status, body, headers = render_error(error, flavour_of_path(path))
    ident = request_id()
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close", f"x-request-id: {ident}",
             *(f"{k}: {v}" for k, v in {**FIXED_HEADERS, **headers}.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large",
            503: "Service Unavailable"}


class GatewayProtocol(web.RequestHandler):
    __slots__ = ("_armed", "_bytes_seen", "_connections", "_counted", "_deadline", "_header_timer",
                 "_in_request", "_timers")

    def __init__(self, server: Any, connections: Connections, *, loop: asyncio.AbstractEventLoop,
                 **kwargs: Any) -> None:
        super().__init__(server, loop=loop, **kwargs)
        self._timers = loop  # the timers' clock; aiohttp's own `_loop` is private
        self._connections = connections
        self._header_timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._in_request = False
        self._armed = False
        self._bytes_seen = False
        self._counted = False

    # --- connection life ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self._connections
        if limits.max_connections and limits.open >= limits.max_connections:
            limits.refused += 1
            error = Unavailable(
                "The gateway has as many connections open as it accepts; retry shortly.",
                headers=retry_headers(1))
            transport.write(_raw_response(error, "/"))  # type: ignore[attr-defined]
            transport.close()
            return
        limits.open += 1
        self._counted = True
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._connections.open -= 1
            self._counted = False
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_request:
            self._bytes_seen = True
            if not self._armed:
                self._arm()  # the first byte of a new request on a kept-alive connection
        super().data_received(data)

    # --- told by the middleware ---------------------------------------------------------
    def request_started(self) -> None:
        self._in_request = True
        self._armed = False  # the timer, if it fires, finds nothing to do and goes

    def request_finished(self) -> None:
        self._in_request = False
        self._bytes_seen = False

    # --- the header timer -----------------------------------------------------------------
    # Armed for every request's headers, but not made anew each time: a timer that fires
    # early for the current deadline sets itself again, so a kept-alive connection costs
    # one timer per header_timeout, not a timer made and cancelled per request.
    def _arm(self) -> None:
        self._armed = True
        self._deadline = self._timers.time() + self._connections.header_timeout
        if self._header_timer is None:
            self._header_timer = self._timers.call_at(self._deadline, self._expired)

    def _disarm(self) -> None:
        self._armed = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self._armed or self._in_request or self.transport is None:
            self._armed = False
            return
        if self._timers.time() < self._deadline:
            self._header_timer = self._timers.call_at(self._deadline, self._expired)
            return
        self._armed = False
        self._connections.header_timeouts += 1
        transport = self.transport
        if not self._bytes_seen:
            self.force_close()
            return
        error = RequestTimeout(
            f"The request headers did not arrive within {self._connections.header_timeout:g} s.")
        transport.write(_raw_response(error, "/"))
        # Closing now, with the client's bytes unread, would send a reset that can destroy
        # the answer before it is read: half-close, drop what still arrives, close soon.
        ignore_further_input(self)
        if transport.can_write_eof():
            transport.write_eof()
        self._timers.call_later(LINGER_S, transport.close)

    # --- what aiohttp answers without the app -----------------------------------------------
    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # The exception's text quotes the offending bytes (a header line, a token): it
        # goes neither into the answer nor into the log.
        log.debug("unparseable request: %s", type(exc).__name__ if exc else status)
        error: GatewayError
        if isinstance(exc, LineTooLong) or (isinstance(exc, BadHttpMessage)
                                            and "Too many headers" in str(exc.message)):
            error = HeadersTooLarge("The request's headers are too large or too many.")
        elif status >= 500:
            error = GatewayError("The gateway could not handle this request.")
        else:
            what = type(exc).__name__ if exc else str(status)
            error = InvalidRequest(f"The request is not valid HTTP ({what}).")
        try:
            path = request.path
        except Exception:  # a request line too broken to have a path
            path = "/"
        code, body, headers = render_error(error, flavour_of_path(path))
        response = web.Response(status=code, body=body, content_type="application/json",
                                headers={**FIXED_HEADERS, **headers,
                                         "x-request-id": request_id()})
        response.force_close()
        return response


class GatewaySite(web.TCPSite):
    """A TCP site whose connections are `GatewayProtocol`s."""

    __slots__ = ("_connections", "_handler_args")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, connections: Connections,
                 handler_args: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._connections = connections
        self._handler_args = handler_args

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        server = site_runner(self).server
        assert server is not None

        def protocol() -> GatewayProtocol:
            return GatewayProtocol(server, self._connections, loop=loop, **self._handler_args)

        await start_site(self, protocol)


CONNECTIONS = web.AppKey("connections", Connections)  # set by server.start for a gateway listener
