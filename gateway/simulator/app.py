"""The upstream simulator: an aiohttp app that answers like Azure OpenAI, Azure AI
model inference and OpenAI-compatible servers, with latency and fault injection,
and keeps a record of every request for tests and benchmarks."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiohttp import web

from gateway.simulator import shapes
from gateway.simulator.settings import Fault, SimulatorSettings

OPS = ("chat/completions", "completions", "images/embeddings", "embeddings")


@dataclass
class Record:
    """One request as the simulator saw it."""

    path: str
    shape: str
    operation: str
    model: str
    api_key: str | None
    authorization: str | None
    headers: dict[str, str]
    body: dict[str, Any]
    stream: bool
    started: float = field(default_factory=time.monotonic)
    # complete | cancelled | fault:<kind> | rejected
    outcome: str = "open"
    ended: float | None = None


class Simulator:
    """State of one simulator app; reach it with `app[SIMULATOR]`."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.records: deque[Record] = deque(maxlen=settings.keep_records or None)
        self.count = 0
        self._random = random.Random(settings.seed)
        self._counter = itertools.count(1)

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
        key = request.headers.get("api-key")
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        return (key in accept) or (bearer in accept)


SIMULATOR = web.AppKey("simulator", Simulator)


def _shape_and_op(path: str) -> tuple[str, str, str | None]:
    if path.startswith("/openai/deployments/"):
        deployment, _, rest = path[len("/openai/deployments/"):].partition("/")
        return "azure-openai", rest, deployment
    if path.startswith("/models/"):
        return "azure-ai-inference", path[len("/models/"):], None
    for op in OPS:
        if path.endswith("/" + op):
            return "openai", op, None
    return "openai", path.strip("/"), None


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
    shape, op, deployment = _shape_and_op(request.path)
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _json(shapes.error("invalid_request", "Body is not JSON."), 400)
    if not isinstance(body, dict):
        return _json(shapes.error("invalid_request", "Body must be an object."), 400)
    model = deployment or str(body.get("model") or "")
    record = Record(
        path=request.path_qs, shape=shape, operation=op, model=model,
        api_key=request.headers.get("api-key"),
        authorization=request.headers.get("Authorization"),
        headers={k: v for k, v in request.headers.items()
                 if k.lower() not in ("api-key", "authorization")},
        body=body, stream=body.get("stream") is True,
    )
    sim.records.append(record)
    try:
        response = await _serve(request, sim, record, shape, op, body, model)
        if record.outcome == "open":
            record.outcome = "complete"
        return response
    except asyncio.CancelledError:
        record.outcome = "cancelled"
        raise
    except ConnectionResetError:
        record.outcome = "cancelled"
        raise
    finally:
        record.ended = time.monotonic()


async def _serve(request: web.Request, sim: Simulator, record: Record, shape: str, op: str,
                 body: dict[str, Any], model: str) -> web.StreamResponse:
    settings = sim.settings
    if not sim.authorized(request):
        record.outcome = "rejected"
        return _json(shapes.error("401", "Access denied due to invalid subscription key or "
                                  "wrong API endpoint."), 401)
    if op not in OPS or not model:
        record.outcome = "rejected"
        return _json(shapes.error("404", "Resource not found"), 404)
    fault = sim.pick_fault(request)
    if fault and fault != "stall":
        record.outcome = f"fault:{fault}"
        return await _fault(request, fault, settings)
    ttft = _ms(request, "x-sim-ttft-ms", settings.ttft_ms)
    if ttft:
        await asyncio.sleep(ttft)
    text = shapes.prompt_text(op, body)
    if op.endswith("embeddings"):
        inputs = body.get("input")
        items = [inputs] if isinstance(inputs, str) else [
            i if isinstance(i, str) else orjson.dumps(i).decode() for i in (inputs or [])]
        return _json(shapes.embeddings(shape, model, items, settings.embedding_dims,
                                       body.get("encoding_format")))
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    wanted = int(request.headers.get("x-sim-tokens", settings.completion_tokens))
    n = min(wanted, limit) if isinstance(limit, int) and limit > 0 else wanted
    finish = "length" if n < wanted else "stop"
    prompt_tokens = shapes.count_tokens(text)
    tokens = shapes.reply_tokens(model, text, n)
    scripted = request.headers.get("x-sim-reply")
    if scripted:  # tests choose the completion's words
        words = scripted.split(" ")
        tokens = [("" if i == 0 else " ") + w for i, w in enumerate(words)][:n]
    piece = request.headers.get("x-sim-chunk")
    if piece:  # one piece of text, x-sim-chunks times (UTF-8 in base64 after "b64:")
        text_piece = base64.b64decode(piece[4:]).decode() if piece.startswith("b64:") else piece
        tokens = [text_piece] * int(request.headers.get("x-sim-chunks", "1"))
    ident = shapes.completion_id(model, text)
    if record.stream:
        return await _stream(request, sim, record, shape, op, body, model, ident, tokens,
                             prompt_tokens, finish, stall=fault == "stall")
    reply = "".join(tokens)
    headers = ({"x-ratelimit-remaining-tokens": str(settings.remaining_tokens)}
               if settings.remaining_tokens is not None else None)
    if op == "completions":
        return _json(shapes.completion(model, ident, reply, prompt_tokens, n, finish), 200, headers)
    return _json(shapes.chat(shape, model, ident, reply, prompt_tokens, n, finish), 200, headers)


async def _fault(request: web.Request, fault: str, settings: SimulatorSettings) -> web.StreamResponse:
    if fault == "429":
        ms = int(request.headers.get("x-sim-retry-after-ms", settings.retry_after_ms))
        seconds = max(1, -(-ms // 1000))
        return _json(
            shapes.error("429", "Requests to the ChatCompletions_Create Operation under Azure "
                         "OpenAI API have exceeded the token rate limit of your current pricing "
                         f"tier. Please retry after {seconds} seconds."),
            429,
            {"retry-after": str(seconds), "retry-after-ms": str(ms),
             "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"},
        )
    if fault in ("500", "503"):
        return _json(shapes.error("InternalServerError" if fault == "500" else "ServiceUnavailable",
                                  "The simulator was told to fail this request."), int(fault))
    if fault == "hang":
        await asyncio.sleep(3600)
    if fault == "reset" and request.transport is not None:
        request.transport.abort()
        raise ConnectionResetError("simulated reset")
    return _json(shapes.error("invalid_request", f"Unknown fault {fault!r}."), 400)


async def _stream(request: web.Request, sim: Simulator, record: Record, shape: str, op: str,
                  body: dict[str, Any], model: str, ident: str, tokens: list[str],
                  prompt_tokens: int, finish: str, stall: bool) -> web.StreamResponse:
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    token_delay = _ms(request, "x-sim-token-ms", sim.settings.token_ms)

    async def send(obj: dict[str, Any]) -> None:
        await response.write(b"data: " + orjson.dumps(obj) + b"\n\n")

    if shape == "azure-openai" and op == "chat/completions":
        await send(shapes.prompt_annotation_chunk())
    if op == "chat/completions":
        await send(shapes.chunk(shape, op, model, ident, {"content": "", "role": "assistant"},
                                None, include_usage))
    for i, token in enumerate(tokens):
        if stall and i == len(tokens) // 2:
            record.outcome = "fault:stall"
            await asyncio.sleep(3600)
        if token_delay and i:
            await asyncio.sleep(token_delay)
        delta: dict[str, Any] | str = token if op == "completions" else {"content": token}
        await send(shapes.chunk(shape, op, model, ident, delta, None, include_usage))
    await send(shapes.chunk(shape, op, model, ident, "" if op == "completions" else {},
                            finish, include_usage))
    if include_usage:
        await send(shapes.usage_chunk(op, model, ident, prompt_tokens, len(tokens)))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


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
    app.router.add_post("/{path:.*}", handle)
    return app
