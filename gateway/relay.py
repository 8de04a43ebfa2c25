"""Passing the upstream's answer to the client: whole JSON bodies, and streams
event by event as they arrive, with the usage read on the way."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from gateway import sse
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.exchange import Exchange
from gateway.upstream import response_headers
from policies import ContentBlocked, PolicyChain, PolicyError, RequestContext, Usage

STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def record_usage(usage: Any, ctx: RequestContext, ex: Exchange) -> None:
    if not isinstance(usage, dict):
        return
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    if isinstance(prompt, int) and isinstance(completion, int):
        ctx.usage = Usage(prompt, completion)
        ex.prompt_tokens, ex.completion_tokens = prompt, completion


def _error_body(status: int, data: bytes) -> bytes:
    """An upstream error body as it is when it has the contract's shape, else wrapped in it."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return data
    text = data[:200].decode(errors="replace").strip()
    return orjson.dumps(
        {
            "error": {
                "code": "upstream_error",
                "message": f"The upstream answered HTTP {status}: {text}",
                "type": "server_error" if status >= 500 else "invalid_request_error",
                "param": None,
            }
        }
    )


async def relay_json(
    upstream: aiohttp.ClientResponse, ctx: RequestContext, ex: Exchange, chain: PolicyChain
) -> web.Response:
    started = time.perf_counter()
    try:
        data = await upstream.read()
    except TimeoutError:
        raise UpstreamTimeout("The upstream stopped sending its response.") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"The upstream response broke off: {type(exc).__name__}.") from None
    ex.upstream_seconds += time.perf_counter() - started
    headers = response_headers(upstream.headers)
    if upstream.status in (401, 403):
        # The upstream refused the gateway's own credential: not the caller's fault,
        # and passing a 401 on would tell the caller its key is wrong.
        raise UpstreamError(
            f"The upstream rejected the gateway's credential (HTTP {upstream.status}); "
            "the operator must fix the backend's auth settings."
        )
    if upstream.status >= 400:
        body = _error_body(upstream.status, data)
        if body is not data:
            ex.error_code = "upstream_error"
        return web.Response(
            body=body, status=upstream.status, headers=headers, content_type="application/json"
        )
    headers["Content-Type"] = upstream.headers.get("Content-Type", "application/json")
    if chain.looks_at_bodies:
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError("The upstream answered 200 with a body that is not JSON.") from None
        if isinstance(body, dict):
            record_usage(body.get("usage"), ctx, ex)
            await chain.on_response_body(ctx, body)
            data = orjson.dumps(body)
    elif b'"usage"' in data:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            record_usage(orjson.loads(data).get("usage"), ctx, ex)
    return web.Response(body=data, status=upstream.status, headers=headers)


class StreamRelay:
    """One streamed response: upstream events in, strict `data: ...` events out."""

    def __init__(
        self, ctx: RequestContext, ex: Exchange, chain: PolicyChain, strip_usage: bool
    ) -> None:
        self.ctx, self.ex, self.chain = ctx, ex, chain
        self.strip_usage = strip_usage
        self.done = False
        self.last = b""  # the last event sent, to shape a closing chunk like it
        self.blocked = False

    async def events(self, datas: list[bytes]) -> bytes:
        out: list[bytes] = []
        for data in datas:
            if data == sse.DONE:
                self.done = True
                break
            obj: dict[str, Any] | None = None
            if sse.has_usage(data):
                obj = orjson.loads(data)
                record_usage(obj.get("usage"), self.ctx, self.ex)
                if self.strip_usage and not obj.get("choices"):
                    continue  # the usage-only chunk the client did not ask for
            if self.chain.looks_at_chunks:
                if obj is None:
                    obj = orjson.loads(data)
                try:
                    for event in await self.chain.on_response_chunk(self.ctx, obj):
                        out.append(self._emit(orjson.dumps(event)))
                except ContentBlocked as exc:
                    # What was released before the block still goes out, then the end.
                    out.append(self._filtered_end(exc))
                    self.ex.error_code = exc.code
                    self.done = self.blocked = True
                    break
                continue
            out.append(self._emit(data))
        if out and self.ex.ttft is None:
            self.ex.ttft = time.perf_counter() - self.ex.started
        return b"".join(out)

    def _emit(self, data: bytes) -> bytes:
        if sse.has_content(data):
            self.ctx.produced_tokens += 1
        self.last = data
        return sse.encode(data)

    async def _flush(self) -> bytes:
        """What policies still hold when the upstream stream is over."""
        if not self.chain.looks_at_chunks:
            return b""
        events = await self.chain.on_stream_end(self.ctx)
        return b"".join(self._emit(orjson.dumps(e)) for e in events)

    def _filtered_end(self, exc: ContentBlocked) -> bytes:
        """A completion blocked mid-stream ends like Azure's: a chunk whose
        finish_reason is content_filter, then [DONE]."""
        try:
            last = orjson.loads(self.last) if self.last else {}
        except orjson.JSONDecodeError:
            last = {}
        chunk = {
            "id": last.get("id", ""), "object": last.get("object", "chat.completion.chunk"),
            "created": last.get("created", 0), "model": last.get("model", ""),
            "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter",
                         "content_filter_results": exc.result}],
        }
        return sse.encode(orjson.dumps(chunk)) + sse.DONE_EVENT

    async def run(self, request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={**STREAM_HEADERS, **response_headers(upstream.headers)}
        )
        await response.prepare(request)
        decoder = sse.Decoder()
        ex = self.ex
        try:
            while not self.done:
                started = time.perf_counter()
                chunk = await upstream.content.readany()
                ex.upstream_seconds += time.perf_counter() - started
                out = await self.events(decoder.feed(chunk) if chunk else decoder.close())
                if out:
                    await response.write(out)
                if not chunk:
                    break
            if not self.blocked:  # a block has already ended the stream
                try:
                    await response.write(await self._flush() + sse.DONE_EVENT)
                except ContentBlocked as exc:
                    ex.error_code = exc.code
                    await response.write(self._filtered_end(exc))
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
            # The client already has a 200 and some events: the only honest end is
            # an error event in the stream's own format.
            code = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_error"
            ex.error_code = code
            await response.write(_stream_error(code, f"The upstream stream failed: {type(exc).__name__}."))
        except PolicyError as exc:
            ex.error_code = exc.code
            await response.write(_stream_error(exc.code, exc.message))
        except orjson.JSONDecodeError:
            ex.error_code = "upstream_error"
            message = "The upstream sent an event that is not JSON."
            await response.write(_stream_error("upstream_error", message))
        await response.write_eof()
        return response


def _stream_error(code: str, message: str) -> bytes:
    body = {"error": {"code": code, "message": message, "type": "server_error", "param": None}}
    return sse.encode(orjson.dumps(body))
