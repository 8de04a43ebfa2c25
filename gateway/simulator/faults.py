"""What real upstreams do that a polite simulator would not: refusals and failures
before an answer, odd answers in place of one, and streams that misbehave. A fault
is chosen per request (`x-sim-fault: <kind>`) or by the settings."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from gateway.simulator import anthropic, shapes
from gateway.simulator.settings import SimulatorSettings

# Faults that replace the answer.
ANSWER_FAULTS = frozenset({
    "400", "429", "429-retry-after", "429-retry-inf", "500", "503", "529", "hang", "reset",
    "string-error", "text-error", "error-200", "not-object", "redirect", "204", "status-999",
    "oversized", "hostile-headers",
})
# Faults that change how a stream is sent or ends.
STREAM_FAULTS = frozenset({
    "stall", "no-content-type", "bare-done", "no-done", "no-usage", "not-object-event",
    "endless", "long-line", "garbage-event",
})


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


def _retry_wait(request: web.Request, settings: SimulatorSettings) -> tuple[int, int]:
    ms = int(request.headers.get("x-sim-retry-after-ms", settings.retry_after_ms))
    return ms, max(1, -(-ms // 1000))


async def answer(request: web.Request, fault: str, settings: SimulatorSettings,
                 shape: str) -> web.StreamResponse:
    """The answer that replaces the real one."""
    claude = shape == shapes.Service.ANTHROPIC
    if fault.startswith("429"):
        ms, seconds = _retry_wait(request, settings)
        message = ("Requests to the ChatCompletions_Create Operation under Azure OpenAI API have "
                   "exceeded the token rate limit of your current pricing tier. Please retry after "
                   f"{seconds} seconds.")
        body = anthropic.error(429, message) if claude else shapes.error("429", message)
        if fault == "429-retry-after":  # no retry-after-ms, the reset time in its own header
            headers = {"retry-after": str(seconds), "x-ratelimit-reset-tokens": f"{seconds}s"}
        elif fault == "429-retry-inf":
            headers = {"retry-after": "inf", "retry-after-ms": "nan"}
        else:
            headers = {"retry-after": str(seconds), "retry-after-ms": str(ms),
                       "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"}
        return _json(body, 429, headers)
    if fault in ("500", "503", "529"):
        status = int(fault)
        message = "The simulator was told to fail this request."
        body = (anthropic.error(status, message) if claude else
                shapes.error("InternalServerError" if status == 500 else "ServiceUnavailable", message))
        return _json(body, status)
    if fault == "400":
        message = "The request is invalid (as the simulator was told to say)."
        return _json(anthropic.error(400, message) if claude else shapes.error("invalid_request",
                                                                                 message), 400)
    if fault == "hang":
        await asyncio.sleep(3600)
    if fault == "reset" and request.transport is not None:
        request.transport.abort()
        raise ConnectionResetError("simulated reset")
    if fault == "string-error":
        return _json({"error": "The server had an error while processing your request."}, 500)
    if fault == "text-error":
        return web.Response(text="<html><body>502 Bad Gateway</body></html>", status=502,
                            content_type="text/html")
    if fault == "error-200":
        return _json(shapes.error("server_error", "The model produced invalid content."), 200)
    if fault == "not-object":
        return _json([1, 2, 3], 200)
    if fault == "redirect":
        return web.Response(status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"})
    if fault == "204":
        return web.Response(status=204)
    if fault == "status-999":
        return web.Response(status=999, body=b"{}", content_type="application/json")
    if fault == "oversized":
        size = int(request.headers.get("x-sim-size", 8 * 1024 * 1024))
        return web.Response(body=b'{"pad":"' + b"x" * size + b'"}', content_type="application/json")
    if fault == "hostile-headers":
        return _json(shapes.error("429", "Slow down."), 429, {
            "retry-after": "99999999999", "retry-after-ms": "-5",
            "x-ratelimit-remaining-tokens": "\u0661\u0662\u0663",  # Arabic-Indic digits
            "x-ratelimit-remaining-requests": "1e400", "x-odd": "x" * 7000})
    return _json(shapes.error("invalid_request", f"Unknown fault {fault!r}."), 400)
