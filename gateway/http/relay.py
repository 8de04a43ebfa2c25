"""Passing the upstream's answer to the client: whole JSON bodies, and streams
event by event as they arrive, with the usage read on the way. The wire shape of
either is the request's API adapter's (`gateway.apis`).

Once a stream's status line has gone out, nothing may produce a second one: every
failure after that point ends the stream with an error event in the API's own
format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from gateway.apis import Api
from gateway.core import errors
from gateway.core.errors import UpstreamError, UpstreamTimeout
from gateway.core.flavours import Flavour
from gateway.core.flow import Flow
from gateway.core.sse import Decoder, Event, EventTooLarge
from gateway.core.tokens import DEFAULT, TOKENIZER, Tokenizer
from gateway.enforcement.accounting import HOLD_BYTES, count_held
from gateway.translate import StreamTranslator, Target, Translator
from gateway.upstream.client import response_headers
from policies import ContentBlocked, PolicyChain, PolicyError

log = logging.getLogger("gateway.http.relay")

STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
}


class NotAnObject(ValueError):
    """An upstream event or body that is JSON, but not a JSON object."""


def parse_object(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise NotAnObject("not a JSON object")
    return value


async def read_body(upstream: aiohttp.ClientResponse, limit: int) -> bytearray:
    """The whole upstream body, refusing more than `limit` bytes as they arrive. Grown in
    place, so that a large body is held once (a list of chunks joined at the end is twice
    its size at the join)."""
    body = bytearray()
    try:
        while chunk := await upstream.content.readany():
            if len(body) + len(chunk) > limit:
                raise UpstreamError(f"The upstream answer is larger than the {limit} bytes allowed.")
            body += chunk
    except TimeoutError:
        raise UpstreamTimeout("The upstream stopped sending its response.") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise UpstreamError(f"The upstream response broke off: {type(exc).__name__}.") from None
    return body


def error_body(status: int, data: bytes | bytearray, flavour: Flavour) -> bytes | bytearray:
    """An upstream error body as it is when it has the contract's shape, else wrapped in
    the route's error shape."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return data
    text = data[:200].decode(errors="replace").strip()
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        text = parsed["error"][:200]  # {"error": "some text"}, as some servers send
    wrapped = UpstreamError(f"The upstream answered HTTP {status}: {text}")
    return orjson.dumps(errors.error_body(wrapped, flavour, status))


Remember = Callable[[str], Awaitable[None]]


async def relay_json(
    upstream: aiohttp.ClientResponse, api: Api, flow: Flow, chain: PolicyChain, limit: int,
    remember: Remember | None = None, overrides: dict[str, str] | None = None,
    translation: tuple[Translator, Target] | None = None,
) -> web.Response:
    """A whole answer: read within `limit`, its usage recorded, policies shown it, and sent
    on; from a backend of another API (`translation`), translated into the client's first,
    its errors rendered in the client's shape."""
    started = time.perf_counter()
    data: bytes | bytearray = await read_body(upstream, limit)
    flow.upstream_seconds += time.perf_counter() - started
    headers = response_headers(upstream.headers)
    if overrides:  # the gateway's retry headers replace the upstream's, whatever its case
        names = {name.lower() for name in overrides}
        headers = {k: v for k, v in headers.items() if k.lower() not in names} | overrides
    if upstream.status in (401, 403):
        # The upstream refused the gateway's own credential: not the caller's fault,
        # and passing a 401 on would tell the caller its key is wrong.
        raise UpstreamError(
            f"The upstream rejected the gateway's credential (HTTP {upstream.status}); "
            "the operator must fix the backend's auth settings."
        )
    if upstream.status >= 400:
        body = error_body(upstream.status, data, flow.flavour) if translation is None \
            else foreign_error_body(upstream.status, data, flow.flavour)
        if body is not data:
            flow.error_code = "upstream_error"
        return web.Response(
            body=body, status=upstream.status, headers=headers, content_type="application/json"
        )
    headers["Content-Type"] = "application/json"
    parsed = _answer(data)
    if translation is not None:
        if _is_error(parsed):
            raise UpstreamError("The upstream answered 200 with an error instead of an answer: "
                                + _error_text(parsed))
        translator, target = translation
        parsed = translator.response(parsed, target)
    if api.answer_error(parsed):
        raise UpstreamError("The upstream answered 200 with an error instead of an answer: "
                            + _error_text(parsed))
    flow.usage = api.usage(parsed)
    flow.pending = api.pending(parsed)
    if flow.span is not None:
        flow.response_model, flow.finish_reasons = api.answer_facts(parsed)
    if flow.usage is None and not flow.pending:
        # Nothing counted upstream: the gateway counts what was generated.
        flow.answer_texts += [t.value for t in api.completion_texts(parsed)]
    if remember is not None and (ident := api.stored_id(parsed)) is not None:
        await remember(ident)
    if chain.looks_at_bodies:
        await chain.on_response_body(flow, parsed)
        data = orjson.dumps(parsed)
    elif translation is not None:
        data = orjson.dumps(parsed)
    return web.Response(body=data, status=upstream.status, headers=headers)


def foreign_error_body(status: int, data: bytes | bytearray, flavour: Flavour) -> bytes:
    """An error from a backend of another API, in the client's shape: the status kept
    (so the client's SDK raises and retries what it would on a native backend), the
    upstream's message kept when it gave one."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    message = _error_text(parsed) if isinstance(parsed, dict) else \
        data[:200].decode(errors="replace").strip()
    error = UpstreamError(f"The upstream answered HTTP {status}: {message}")
    return orjson.dumps(errors.error_body(error, flavour, status))


def _is_error_event(data: bytes) -> bool:
    """A streamed event that is an error in any API's shape: chat's {"error": {...}},
    Responses' `error` and `response.failed`, Anthropic's `error`."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and (
        event.get("type") in ("error", "response.failed")
        or (isinstance(event.get("error"), dict) and not event.get("choices")))


def _is_error(body: dict[str, Any]) -> bool:
    """An error object in any API's shape (OpenAI's {"error": {...}}, Anthropic's
    {"type": "error", ...}) rather than an answer."""
    return body.get("type") == "error" or (isinstance(body.get("error"), dict)
                                           and not ({"choices", "content", "output"} & body.keys()))


def _answer(data: bytes | bytearray) -> dict[str, Any]:
    try:
        return parse_object(data)
    except ValueError:
        raise UpstreamError("The upstream answered 200 with a body that is not a JSON object.") from None


def _error_text(body: dict[str, Any]) -> str:
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return str(message)[:200] if message else "(no message)"


class _UpstreamBroke(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class StreamRelay:
    """One streamed response: upstream events in, the API's own framing out."""

    def __init__(self, api: Api, flow: Flow, chain: PolicyChain, strip_usage: bool,
                 max_event_bytes: int, max_response_bytes: int,
                 remember: Remember | None = None,
                 reshape: StreamTranslator | None = None) -> None:
        self.api, self.flow, self.chain = api, flow, chain
        # A backend of another API: its events become the client API's before anything
        # else looks at them, so that usage, filters and framing work as for a native one.
        self.reshape = reshape
        # Called with the id of the stored response, before its first event goes out,
        # so that no client can ask for it before the gateway knows whose it is.
        self.remember = remember
        self.strip_usage = strip_usage
        self.max_event_bytes, self.max_response_bytes = max_event_bytes, max_response_bytes
        self.done = False
        self.blocked = False
        self.tokenizer: Tokenizer | None = None
        self.first = b""  # the first and last event sent, to shape a closing event like them
        self.last = b""
        self.received = 0

    async def events(self, events: list[Event]) -> bytes:
        """What the client gets for these upstream events."""
        reshape = self.reshape
        if reshape is not None:
            events = [out for name, data in events for out in reshape.feed(name, data)]
        return await self._client_events(events)

    async def _client_events(self, events: list[Event]) -> bytes:
        api, ex = self.api, self.flow
        out: list[bytes] = []
        for name, data in events:
            if api.is_end(data):
                self.done = True
                break
            if b'"error"' in data and not ex.error_code and _is_error_event(data):
                # The upstream failed mid-stream and said so: relayed as it came, and
                # counted as the upstream's failure (health, metrics, the access log).
                ex.error_code = "upstream_error"
            pieces = api.output_text(data)
            if pieces:
                ex.output += pieces
                ex.output_size += sum(map(len, pieces))
                if ex.output_size >= HOLD_BYTES and self.tokenizer is not None:
                    deployment = ex.routed_to
                    await count_held(self.tokenizer, ex,
                                     DEFAULT if deployment is None else deployment.encoding)
            if ex.span is not None:
                model, finish = api.stream_facts(data)
                if model and not ex.response_model:
                    ex.response_model = model
                if finish and finish not in ex.finish_reasons:
                    ex.finish_reasons += (finish,)
            obj: dict[str, Any] | None = None
            if self.remember is not None:
                obj = parse_object(data)
                remember, self.remember = self.remember, None
                if (ident := api.stored_id(obj)) is not None:
                    await remember(ident)
            if api.may_carry_usage(data):
                obj = obj or parse_object(data)
                ex.usage = api.stream_usage(obj, ex.usage)
                if api.drop_event(obj, self.strip_usage):
                    continue
            if self.chain.looks_at_chunks:
                if obj is None:
                    obj = parse_object(data)
                try:
                    for event in await self.chain.on_response_chunk(ex, obj):
                        # Events a policy held and releases now are named by their own
                        # type, not by the name of the event that released them.
                        out.append(self._emit(name if event is obj else None, orjson.dumps(event),
                                              api.is_keepalive(event)))
                except ContentBlocked as exc:
                    # What was released before the block still goes out, then the end.
                    out.append(api.blocked_end(self.first, self.last, exc.result))
                    ex.error_code = exc.code
                    self.done = self.blocked = True
                    break
                continue
            out.append(self._emit(name, data))
        if out and ex.ttft is None:
            ex.ttft = time.perf_counter() - ex.started
        return b"".join(out)

    def _emit(self, name: bytes | None, data: bytes, keepalive: bool = False) -> bytes:
        if not self.first:
            self.first = data
        if not keepalive:  # a ping says nothing of where the stream is (which block is open)
            self.last = data
        return self.api.encode(name, data)

    async def _flush(self) -> bytes:
        """What policies still hold when the upstream stream is over."""
        if not self.chain.looks_at_chunks:
            return b""
        events = await self.chain.on_stream_end(self.flow)
        return b"".join(self._emit(None, orjson.dumps(e)) for e in events)

    async def _read(self, upstream: aiohttp.ClientResponse) -> bytes:
        started = time.perf_counter()
        try:
            chunk = await upstream.content.readany()
        except TimeoutError:
            raise _UpstreamBroke("upstream_timeout", "The upstream stream stalled.") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _UpstreamBroke("upstream_error",
                                 f"The upstream stream failed: {type(exc).__name__}.") from None
        finally:
            self.flow.upstream_seconds += time.perf_counter() - started
        self.received += len(chunk)
        if self.received > self.max_response_bytes:
            raise _UpstreamBroke("upstream_error", "The upstream stream is larger than the "
                                 f"{self.max_response_bytes} bytes allowed.")
        return chunk

    def _left(self, decoder: Decoder) -> list[Event]:
        """What the upstream left without its blank line when its body ended: a whole last
        event (some upstreams end so), or half of one, which means the stream broke off."""
        events = decoder.close()
        for _, data in events:
            if not self.api.is_end(data):
                try:
                    parse_object(data)
                except ValueError:
                    raise _UpstreamBroke("upstream_error",
                                         "The upstream stream ended in the middle of an event.") from None
        return events

    async def run(self, request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={**STREAM_HEADERS, **response_headers(upstream.headers)}
        )
        await response.prepare(request)
        self.tokenizer = request.app.get(TOKENIZER)  # for a long answer's text (count_held)
        decoder = Decoder(self.max_event_bytes)
        ex, api = self.flow, self.api
        try:
            while not self.done:
                chunk = await self._read(upstream)
                out = await self.events(decoder.feed(chunk) if chunk else self._left(decoder))
                if out:
                    await response.write(out)
                if not chunk:
                    break
            if self.reshape is not None and not self.blocked:
                out = await self._client_events(self.reshape.close())
                if out:
                    await response.write(out)
            if not self.first and not self.done:
                raise _UpstreamBroke("upstream_error", "The upstream answered with no event at "
                                     "all (not an event stream).")
            if not self.blocked:  # a block has already ended the stream
                try:
                    await response.write(await self._flush() + api.end())
                except ContentBlocked as exc:
                    ex.error_code = exc.code
                    await response.write(api.blocked_end(self.first, self.last, exc.result))
        except ConnectionResetError:
            raise  # the client is gone: nothing more can be written
        except _UpstreamBroke as exc:
            # The client already has a 200 and some events: the only honest end is
            # an error event in the stream's own format.
            await self._fail(response, exc.code, exc.message)
        except EventTooLarge as exc:
            await self._fail(response, "upstream_error", str(exc))
        except PolicyError as exc:
            ex.error_code = exc.code
            await response.write(api.stream_error(exc.code, exc.message, self.last))
        except ValueError:
            await self._fail(response, "upstream_error",
                             "The upstream sent an event that is not a JSON object.")
        except Exception:
            log.exception("stream of request %s failed", ex.request_id)
            await self._fail(response, "internal_error",
                             f"The gateway failed while relaying this stream (id {ex.request_id}).")
        await response.write_eof()
        return response

    async def _fail(self, response: web.StreamResponse, code: str, message: str) -> None:
        self.flow.error_code = code
        await response.write(self.api.stream_error(code, message, self.last))
