"""The upstream simulator: an aiohttp app that answers like Azure OpenAI, Azure AI
model inference, OpenAI-compatible servers (chat, completions, embeddings, the
Responses API with stored responses, images and audio: `media`) and Anthropic's
Messages API, with latency and fault injection (`faults`), and keeps a record of every
request."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
from collections import deque
from dataclasses import asdict
from typing import Any

import orjson
from aiohttp import web

from gateway.simulator import anthropic, faults, media, responses, shapes
from gateway.simulator.records import Record, answering, kept_headers
from gateway.simulator.settings import Fault, SimulatorSettings

OPS = ("chat/completions", "completions", "images/embeddings", "embeddings")


class Simulator:
    """State of one simulator app; reach it with `app[SIMULATOR]`."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.records: deque[Record] = deque(maxlen=settings.keep_records or None)
        self.count = 0
        self.store = responses.Store()
        self._random = random.Random(settings.seed)
        self._counter = itertools.count(1)
        self._encoding: Any = None

    def pick_fault(self, request: web.Request) -> str | None:
        forced = request.headers.get("x-sim-fault")
        if forced:
            return forced
        n = next(self._counter)
        for fault in self.settings.faults:
            if self._hits(fault, n):
                return fault.kind
        return None

    def _hits(self, fault: Fault, n: int) -> bool:
        if fault.every is not None:
            return n % fault.every == 0
        return self._random.random() < fault.rate

    def authorized(self, request: web.Request) -> bool:
        accept = self.settings.accept
        if not accept:
            return True
        keys = {request.headers.get("api-key"), request.headers.get("x-api-key")}
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        return bool(keys.intersection(accept)) or (bearer in accept)

    # --- tokens -----------------------------------------------------------------------
    def encoding(self) -> Any:
        if self._encoding is None:
            from gateway.core.tokens import load_encoding  # a real tokenizer only when asked for

            self._encoding = load_encoding(self.settings.tokenizer)
        return self._encoding

    def count_tokens(self, text: str, messages: int) -> int:
        if self.settings.tokenizer == "words":
            return shapes.count_tokens(text)
        # OpenAI's own accounting: 3 tokens around each message, 3 to prime the reply.
        return len(self.encoding().encode_ordinary(text)) + 3 * messages + 3

    def tokens(self, words: list[str]) -> list[str]:
        """The reply as streamed: one word per event, or one real token per event."""
        if self.settings.tokenizer == "words":
            return words
        enc = self.encoding()
        return [enc.decode([t]) for t in enc.encode_ordinary("".join(words))]


SIMULATOR = web.AppKey("simulator", Simulator)


def _route(path: str) -> tuple[shapes.Service, str, str | None]:
    """(shape, operation, deployment) of a path."""
    if path.startswith("/openai/deployments/"):
        deployment, _, rest = path[len("/openai/deployments/"):].partition("/")
        return shapes.Service.AZURE_OPENAI, rest, deployment
    if path.startswith("/models/"):
        return shapes.Service.AZURE_INFERENCE, path[len("/models/"):], None
    if path.endswith("/v1/messages"):
        return shapes.Service.ANTHROPIC, "messages", None
    if path.endswith("/v1/messages/count_tokens"):
        return shapes.Service.ANTHROPIC, "messages/count_tokens", None
    head, marker, rest = path.partition("/responses")
    if marker and (not rest or rest.startswith("/")):
        shape = shapes.Service.AZURE_OPENAI if head.startswith("/openai") else shapes.Service.OPENAI
        parts = rest.strip("/").split("/") if rest else []
        if parts == ["compact"]:  # POST /responses/compact, not a stored response's id
            return shape, "responses/compact", None
        op = "responses" if not parts else "responses/" + ("/".join(parts[1:]) or "get")
        return shape, op, parts[0] if parts else None
    for op in (*OPS, *media.OPS):
        if path.endswith("/" + op):
            return shapes.Service.OPENAI, op, None
    return shapes.Service.OPENAI, path.strip("/"), None


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


def _ms(request: web.Request, header: str, default: float) -> float:
    try:
        return float(request.headers.get(header, default)) / 1000.0
    except ValueError:
        return default / 1000.0


async def handle(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR]
    sim.count += 1
    shape, op, deployment = _route(request.path)
    if op in media.OPS and request.method == "POST":
        return await media.handle(request, sim, shape, op, deployment)
    body: Any = {}
    if request.method == "POST" and request.can_read_body:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _json(shapes.error("invalid_request", "Body is not JSON."), 400)
        if not isinstance(body, dict):
            return _json(shapes.error("invalid_request", "Body must be an object."), 400)
    stored = op.startswith("responses/") and op != "responses/compact"
    model = (None if stored else deployment) or str(body.get("model") or "")
    record = Record(
        path=request.path_qs, shape=shape, operation=op, model=model,
        api_key=request.headers.get("api-key") or request.headers.get("x-api-key"),
        authorization=request.headers.get("Authorization"),
        headers=kept_headers(request.headers), body=body, stream=body.get("stream") is True,
        method=request.method,
    )
    sim.records.append(record)
    with answering(record):
        if stored:
            return _stored(sim, record, op, deployment or "")
        return await _serve(request, sim, record, shape, op, body, model)


def _stored(sim: Simulator, record: Record, op: str, ident: str) -> web.Response:
    kept = sim.store.responses.get(ident)
    found = sim.store.get(ident)
    if kept is None or found is None:
        record.outcome = "rejected"
        return _json(responses.not_found(ident), 404)
    if op == "responses/get" and record.method == "GET":
        return _json(found)
    if op == "responses/get" and record.method == "DELETE":
        del sim.store.responses[ident]
        return _json({"id": ident, "object": "response", "deleted": True})
    if op == "responses/input_items":
        return _json(responses.items_page(kept))
    if op == "responses/cancel" and found.get("background"):
        kept.response = {**found, "status": "cancelled"} if kept.final is not None else found
        kept.final = None
        return _json(kept.response)
    return _json(shapes.error("invalid_request", "Only background responses can be cancelled."), 400)


async def _serve(request: web.Request, sim: Simulator, record: Record, shape: str, op: str,
                 body: dict[str, Any], model: str) -> web.StreamResponse:
    settings = sim.settings
    claude = shape == shapes.Service.ANTHROPIC
    if not sim.authorized(request):
        record.outcome = "rejected"
        message = "Access denied due to invalid subscription key or wrong API endpoint."
        return _json(anthropic.error(401, "invalid x-api-key") if claude else shapes.error("401", message),
                     401)
    known = (*OPS, "responses", "responses/compact", "messages", "messages/count_tokens")
    if op not in known or not model:
        record.outcome = "rejected"
        return _json(anthropic.error(404, f"model: {model}") if claude
                     else shapes.error("404", "Resource not found"), 404)
    problem = (anthropic.check(body) if op == "messages" else
               chat_problem(body) if op == "chat/completions" else None)
    if problem:  # what the real service refuses, so that a sloppy translation fails here
        record.outcome = "rejected"
        return _json(anthropic.error(400, problem) if claude
                     else shapes.error("invalid_request_error", problem), 400)
    previous = body.get("previous_response_id")
    if op == "responses" and isinstance(previous, str) and sim.store.get(previous) is None:
        record.outcome = "rejected"
        return _json(responses.not_found(previous, "previous_response_id"), 400)
    fault = sim.pick_fault(request)
    if fault in faults.ANSWER_FAULTS:
        record.outcome = f"fault:{fault}"
        return await faults.answer(request, fault, settings, shape)
    ttft = _ms(request, "x-sim-ttft-ms", settings.ttft_ms)
    if ttft:
        await asyncio.sleep(ttft)
    if op.endswith("embeddings"):
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else [
            i if isinstance(i, str) else orjson.dumps(i).decode() for i in (inputs or [])]
        return _json(shapes.embeddings(shape, model, items, settings.embedding_dims,
                                       body.get("encoding_format")))
    if op in ("responses", "responses/compact"):
        text, messages = responses.prompt_text(body), len(responses.input_items(body))
    elif claude:
        text, messages = anthropic.prompt_text(body), len(body.get("messages") or [])
    else:
        text, messages = shapes.prompt_text(op, body), len(body.get("messages") or [1])
    prompt_tokens = sim.count_tokens(text, messages)
    if op == "messages/count_tokens":
        return _json({"input_tokens": prompt_tokens})
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    wanted = int(request.headers.get("x-sim-tokens", settings.completion_tokens))
    n = min(wanted, limit) if isinstance(limit, int) and limit > 0 else wanted
    finish = "length" if n < wanted else "stop"
    tokens = sim.tokens(shapes.reply_tokens(model, text, n))
    scripted = request.headers.get("x-sim-reply")
    if scripted:  # tests choose the completion's words
        words = scripted.split(" ")
        tokens = sim.tokens([("" if i == 0 else " ") + w for i, w in enumerate(words)][:n])
    piece = request.headers.get("x-sim-chunk")
    if piece:  # one piece of text, x-sim-chunks times (UTF-8 in base64 after "b64:")
        text_piece = base64.b64decode(piece[4:]).decode() if piece.startswith("b64:") else piece
        tokens = [text_piece] * int(request.headers.get("x-sim-chunks", "1"))
    calls = _tool_calls(request, op, body, model, text)
    if record.stream:
        return await _stream(request, sim, record, shape, op, body, model, tokens, prompt_tokens,
                             finish, fault, calls)
    headers = ({"x-ratelimit-remaining-tokens": str(settings.remaining_tokens)}
               if settings.remaining_tokens is not None else None)
    if op == "responses/compact":
        return _json(responses.compact(body, model, tokens, prompt_tokens), 200, headers)
    if op == "responses":
        return _json(responses.create(sim.store, body, model, tokens, prompt_tokens,
                                      incomplete=finish == "length"), 200, headers)
    if claude:
        return _json(anthropic.message(body, model, tokens, prompt_tokens, finish), 200, headers)
    ident = shapes.completion_id(model, text)
    if op == "completions":
        return _json(shapes.completion(model, ident, "".join(tokens), prompt_tokens, len(tokens),
                                       finish), 200, headers)
    completion = sum(len(shapes.fragments(c["function"]["arguments"])) for c in calls) or len(tokens)
    answer = shapes.chat(shape, model, ident, "".join(tokens), prompt_tokens, completion, finish,
                         calls)
    shapes.add_details(answer["usage"], *_details(request))
    if fault == "no-usage":
        del answer["usage"]
    return _json(answer, 200, headers)


def chat_problem(body: dict[str, Any]) -> str | None:
    """What OpenAI's chat API refuses in a tool exchange, in its words: a tool message
    that answers no call of the assistant message before it, and a call left unanswered."""
    calls: list[str] = []  # the ids the last assistant message called
    answered: set[str] = set()
    for message in [*(body.get("messages") or []), {}]:  # {}: the end, where calls must be answered
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            if message.get("tool_call_id") not in calls:
                return ("Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.")
            answered.add(message["tool_call_id"])
            continue
        if missing := [c for c in calls if c not in answered]:
            return ("An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                    f"response messages: {', '.join(missing)}")
        calls, answered = [], set()
        if role == "assistant":
            calls = [str(c.get("id")) for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    return None


def _tool_calls(request: web.Request, op: str, body: dict[str, Any], model: str,
                text: str) -> list[dict[str, Any]]:
    """x-sim-tool-calls: N calls to the offered function tools instead of text (chat),
    until a tool's result came back (then the model answers, as a real one does at the
    end of a tool loop); x-sim-tool-arguments: their arguments (JSON; UTF-8 in base64
    after "b64:")."""
    wanted = request.headers.get("x-sim-tool-calls")
    if op != "chat/completions" or not wanted:
        return []
    if any(isinstance(m, dict) and m.get("role") == "tool" for m in body.get("messages") or []):
        return []
    arguments = request.headers.get("x-sim-tool-arguments")
    if arguments is not None and arguments.startswith("b64:"):
        arguments = base64.b64decode(arguments[4:]).decode()
    return shapes.tool_calls(body, int(wanted), arguments, model + "\x1f" + text)


def _details(request: web.Request) -> tuple[int, int]:
    """x-sim-cached-tokens, x-sim-reasoning-tokens: what the usage reports of each."""
    return (int(request.headers.get("x-sim-cached-tokens", "0")),
            int(request.headers.get("x-sim-reasoning-tokens", "0")))


class _Raw:
    """A response written straight to the connection: how a server that sends no
    Content-Type at all answers (aiohttp always adds one). Close-delimited."""

    def __init__(self, request: web.Request) -> None:
        self.request = request

    async def prepare(self) -> None:
        await self.request.writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")

    async def write(self, data: bytes) -> None:
        await self.request.writer.write(data)

    async def write_eof(self) -> None:
        if self.request.transport is not None:
            self.request.transport.close()


async def _stream(request: web.Request, sim: Simulator, record: Record, shape: str, op: str,
                  body: dict[str, Any], model: str, tokens: list[str], prompt_tokens: int,
                  finish: str, fault: str | None,
                  calls: list[dict[str, Any]]) -> web.StreamResponse:
    response: Any
    if fault == "no-content-type":
        response = _Raw(request)
        await response.prepare()
    else:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
    delay = _ms(request, "x-sim-token-ms", sim.settings.token_ms)
    stall = fault == "stall"
    if stall:
        record.outcome = "fault:stall"

    async def named(name: bytes, data: bytes | dict[str, Any]) -> None:
        raw = data if isinstance(data, bytes) else orjson.dumps(data)
        await response.write(b"event: " + name + b"\ndata: " + raw + b"\n\n")

    if fault == "long-line":
        await response.write(b"data: " + b"x" * int(request.headers.get("x-sim-size", 8 << 20)))
    elif fault == "endless":
        while True:
            await response.write(b"data: " + orjson.dumps(shapes.chunk(
                shape, "chat/completions", model, "x", {"content": " more"}, None, False)) + b"\n\n")
            await asyncio.sleep(0)
    elif op == "responses":
        await responses.stream(named, sim.store, body, model, tokens, prompt_tokens, delay, stall)
    elif shape == shapes.Service.ANTHROPIC:
        await anthropic.stream(named, body, model, tokens, prompt_tokens, finish, delay, stall)
    else:
        await _chat_stream(response, shape, op, body, model, tokens, prompt_tokens, finish, delay,
                           fault, _details(request), calls)
    await response.write_eof()
    # A raw answer is already on the wire: what aiohttp writes after it goes nowhere.
    return response if isinstance(response, web.StreamResponse) else web.Response()


async def _chat_stream(response: Any, shape: str, op: str, body: dict[str, Any],
                       model: str, tokens: list[str], prompt_tokens: int, finish: str, delay: float,
                       fault: str | None, details: tuple[int, int],
                       calls: list[dict[str, Any]] | None = None) -> None:
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True \
        and fault != "no-usage"
    ident = shapes.completion_id(model, str(prompt_tokens))

    async def send(obj: dict[str, Any]) -> None:
        await response.write(b"data: " + orjson.dumps(obj) + b"\n\n")

    if shape == shapes.Service.AZURE_OPENAI and op == "chat/completions":
        await send(shapes.prompt_annotation_chunk())
    if calls:
        deltas = shapes.tool_call_deltas(calls)
        for i, piece in enumerate(deltas):
            if fault == "stall" and i == len(deltas) // 2:
                await asyncio.sleep(3600)
            if delay and i:
                await asyncio.sleep(delay)
            await send(shapes.chunk(shape, op, model, ident, piece, None, include_usage))
        await send(shapes.chunk(shape, op, model, ident, {}, "tool_calls", include_usage))
        if include_usage:
            fragments = sum(len(shapes.fragments(c["function"]["arguments"])) for c in calls)
            await send(shapes.usage_chunk(op, model, ident, prompt_tokens, fragments, shape))
        await response.write(b"data: [DONE]\n\n")
        return
    if op == "chat/completions":
        await send(shapes.chunk(shape, op, model, ident, {"content": "", "role": "assistant"},
                                None, include_usage))
    for i, token in enumerate(tokens):
        if fault == "stall" and i == len(tokens) // 2:
            await asyncio.sleep(3600)
        if delay and i:
            await asyncio.sleep(delay)
        if fault == "not-object-event" and i == len(tokens) // 2:
            await response.write(b'data: [{"usage": {"prompt_tokens": 1}}]\n\n')
        if fault == "garbage-event" and i == len(tokens) // 2:
            await response.write(b'data: {"usage": {not json\n\n')
        delta: dict[str, Any] | str = token if op == "completions" else {"content": token}
        await send(shapes.chunk(shape, op, model, ident, delta, None, include_usage))
    await send(shapes.chunk(shape, op, model, ident, "" if op == "completions" else {},
                            finish, include_usage))
    if include_usage:
        last = shapes.usage_chunk(op, model, ident, prompt_tokens, len(tokens), shape)
        shapes.add_details(last["usage"], *details)
        await send(last)
    if fault == "bare-done":
        await response.write(b"[DONE]\n\n")
    elif fault != "no-done":
        await response.write(b"data: [DONE]\n\n")


async def model_info(request: web.Request) -> web.Response:
    return _json({"model_name": "simulated-model", "model_type": "chat-completion",
                  "model_provider_name": "Simulator"})


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def records(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return _json({"count": sim.count, "records": [asdict(r) for r in sim.records]})


def create_simulator(settings: SimulatorSettings | None = None) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SIMULATOR] = Simulator(settings or SimulatorSettings())
    app.router.add_get("/_sim/requests", records)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/models/info", model_info)
    app.router.add_get("/_sim/image.png", media.image)
    app.router.add_route("*", "/{path:.*}", handle)
    return app
