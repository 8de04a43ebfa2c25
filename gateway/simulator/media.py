"""The simulator's images and audio: generations and edits (gpt-image-1 with token usage
and streamed partial images, dall-e-3 with URLs or base64 and no usage), transcriptions
and translations (whisper with `duration` usage, gpt-4o-transcribe with `tokens` usage
and streamed deltas; every response format), and speech (mp3, wav or pcm bytes sent in
chunks as they are "made", or `stream_format: sse` events).

Forms are read part by part as a real service reads them, the audio file's length taken
from its bytes (`gateway.core.audio_length`), and what arrived is recorded
(`Record.upload_bytes`), so that tests can tell how much of an upload reached the
upstream. Tests script a transcript with `x-sim-reply` and the pace of speech chunks
with `x-sim-token-ms`."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from typing import Any

import orjson
from aiohttp import BodyPartReader, MultipartReader, web

from gateway.core.audio_length import Meter
from gateway.simulator import faults, samples, shapes
from gateway.simulator.records import Record, answering, kept_headers

OPS = frozenset({"images/generations", "images/edits", "audio/transcriptions",
                 "audio/translations", "audio/speech"})
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
SPEECH_CHUNK = 4096
# gpt-image-1's output tokens per image (OpenAI's table), as the adapter reserves them.
IMAGE_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
CRLF_EVENT = b"\r\n\r\n"


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    return _json({"error": {"message": message, "type": "invalid_request_error", "param": param,
                            "code": None}}, status)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class Form:
    """A multipart body as it was read: text fields, file parts, the audio's length."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.files: list[tuple[str, str, int]] = []  # name, filename, size
        self.meter = Meter()


async def read_form(request: web.Request, record: Record) -> Form:
    form = Form()
    reader = MultipartReader(request.headers, request.content)
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart")
        name, size = part.name or "", 0
        if part.filename is None:
            value = (await part.read()).decode()
            record.upload_bytes += len(value)
            held = form.fields.get(name)
            form.fields[name] = value if held is None else [*(
                held if isinstance(held, list) else [held]), value]
            continue
        while chunk := await part.read_chunk(64 * 1024):
            size += len(chunk)
            record.upload_bytes += len(chunk)
            if name == "file":
                form.meter.feed(chunk)
        if name == "file":
            form.meter.end()
        form.files.append((name, part.filename, size))
    return form


async def handle(request: web.Request, sim: Any, shape: str, op: str,
                 deployment: str | None) -> web.StreamResponse:
    """Recorded before the body is read, since how much of it arrived is part of what a
    test looks at."""
    record = Record(
        path=request.path_qs, shape=shape, operation=op, model=deployment or "",
        api_key=request.headers.get("api-key"), authorization=request.headers.get("Authorization"),
        headers=kept_headers(request.headers),
        body={}, stream=False)
    sim.records.append(record)
    with answering(record):
        return await serve(request, sim, record, shape, op)


async def serve(request: web.Request, sim: Any, record: Record, shape: str,
                op: str) -> web.StreamResponse:
    if not sim.authorized(request):
        record.outcome = "rejected"
        return _json(shapes.error("401", "Access denied due to invalid subscription key or wrong "
                                         "API endpoint."), 401)
    form: Form | None = None
    try:
        if request.content_type == "multipart/form-data":
            form = await read_form(request, record)
            body: dict[str, Any] = form.fields
        else:
            raw = await request.read()
            record.upload_bytes += len(raw)
            body = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError, UnicodeDecodeError):
        record.outcome = "rejected"
        return _error(400, "The body is not a valid form or JSON object.")
    if not isinstance(body, dict):
        return _error(400, "The body must be a JSON object.")
    record.body = body
    record.model = record.model or str(body.get("model") or "")
    record.stream = _truthy(body.get("stream")) or body.get("stream_format") == "sse"
    if not record.model:
        record.outcome = "rejected"
        return _error(400, "you must provide a model parameter", "model")
    fault = sim.pick_fault(request)
    if fault in faults.ANSWER_FAULTS:
        record.outcome = f"fault:{fault}"
        return await faults.answer(request, fault, sim.settings, shape)
    ttft = float(request.headers.get("x-sim-ttft-ms", sim.settings.ttft_ms)) / 1000
    if ttft:
        await asyncio.sleep(ttft)
    if op.startswith("images/"):
        return await _images(request, record.model, op, body, form)
    if op == "audio/speech":
        return await _speech(request, sim, record.model, body, fault)
    return await _transcript(request, record.model, op, body, form)


# --- images -------------------------------------------------------------------------------
async def _images(request: web.Request, model: str, op: str, body: dict[str, Any],
                  form: Form | None) -> web.StreamResponse:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return _error(400, "Missing required parameter: 'prompt'.", "prompt")
    inputs = [f for f in (form.files if form else []) if f[0] in ("image", "image[]")]
    if op == "images/edits" and not inputs and not body.get("images"):
        return _error(400, "Missing required parameter: 'image'.", "image")
    n = int(body.get("n") or 1)
    size = str(body.get("size") or "1024x1024")
    dalle = model.startswith("dall-e")
    quality = str(body.get("quality") or ("standard" if dalle else "high"))
    image = base64.b64encode(samples.png()).decode()
    if dalle:
        url = f"{request.scheme}://{request.host}/_sim/image.png"
        as_url = body.get("response_format", "url") == "url"
        data = [{"revised_prompt": f"A clear picture of {prompt}", **({"url": url} if as_url
                                                                        else {"b64_json": image})}
                for _ in range(n)]
        return _json({"created": int(time.time()), "data": data})
    per_image = IMAGE_TOKENS.get(quality, IMAGE_TOKENS["high"])
    text_tokens = len(prompt.split())
    image_tokens = 388 * len(inputs)
    usage = {"input_tokens": text_tokens + image_tokens,
             "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
             "output_tokens": per_image * n,
             "output_tokens_details": {"image_tokens": per_image * n, "text_tokens": 0},
             "total_tokens": text_tokens + image_tokens + per_image * n}
    common = {"background": "opaque", "output_format": "png", "quality": quality, "size": size}
    if not _truthy(body.get("stream")):
        return _json({"created": int(time.time()), **common,
                      "data": [{"b64_json": image} for _ in range(n)], "usage": usage})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    prefix = "image_edit" if op == "images/edits" else "image_generation"
    partials = int(body.get("partial_images") or 0)
    for _ in range(n):
        for index in range(partials):
            event = {"type": f"{prefix}.partial_image", "b64_json": image,
                     "created_at": int(time.time()), **common, "partial_image_index": index}
            await response.write(_named(f"{prefix}.partial_image", event))
        event = {"type": f"{prefix}.completed", "b64_json": image, "created_at": int(time.time()),
                 **common, "usage": usage}
        await response.write(_named(f"{prefix}.completed", event))
    await response.write_eof()
    return response


def _named(name: str, event: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def image(request: web.Request) -> web.Response:
    """Where dall-e-3's `url` answers point."""
    return web.Response(body=samples.png(), content_type="image/png")


# --- transcripts --------------------------------------------------------------------------
def _words(seconds: float) -> str:
    count = max(3, round(seconds * 2.5))
    words = [shapes.WORDS[i % len(shapes.WORDS)] for i in range(count)]
    return (" ".join(words)).capitalize() + "."


async def _transcript(request: web.Request, model: str, op: str, body: dict[str, Any],
                      form: Form | None) -> web.StreamResponse:
    audio = [f for f in (form.files if form else []) if f[0] == "file"]
    if not audio or form is None:
        return _error(400, "Missing required parameter: 'file'.", "file")
    seconds = form.meter.seconds() or audio[0][2] / 16_000  # an unread container: ~128 kbit/s
    fmt = str(body.get("response_format") or "json")
    if fmt not in FORMATS:
        return _error(400, f"response_format '{fmt}' is not one of {', '.join(FORMATS)}.",
                      "response_format")
    scripted = request.headers.get("x-sim-reply")
    text = scripted or _words(seconds)
    whisper = model.startswith("whisper")
    prompt_tokens = len(str(body.get("prompt") or "").split())
    audio_tokens = math.ceil(seconds * 10)
    output_tokens = len(text.split())
    usage: dict[str, Any] = (
        {"type": "duration", "seconds": math.ceil(seconds)} if whisper else
        {"type": "tokens", "total_tokens": prompt_tokens + audio_tokens + output_tokens,
         "input_tokens": prompt_tokens + audio_tokens,
         "input_token_details": {"text_tokens": prompt_tokens, "audio_tokens": audio_tokens},
         "output_tokens": output_tokens})
    if _truthy(body.get("stream")) and not whisper:  # whisper ignores `stream`
        return await _transcript_stream(request, text, usage)
    text_type = "text/plain; charset=utf-8"
    if fmt == "text":
        return web.Response(text=text + "\n", headers={"Content-Type": text_type})
    if fmt == "srt":
        return web.Response(text=samples.srt(text, seconds), headers={"Content-Type": text_type})
    if fmt == "vtt":
        return web.Response(text=samples.vtt(text, seconds), headers={"Content-Type": text_type})
    if fmt == "verbose_json":
        granularities = body.get("timestamp_granularities[]") or []
        words = "word" in (granularities if isinstance(granularities, list) else [granularities])
        task = "translate" if op == "audio/translations" else "transcribe"
        return _json(samples.verbose(text, seconds, task, usage, words))
    return _json({"text": text, "usage": usage})


async def _transcript_stream(request: web.Request, text: str, usage: dict[str, Any]
                             ) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    delay = float(request.headers.get("x-sim-token-ms", 0)) / 1000
    for i, word in enumerate(text.split(" ")):
        if delay and i:
            await asyncio.sleep(delay)
        delta = word if i == 0 else " " + word
        await response.write(_data({"type": "transcript.text.delta", "delta": delta}))
    await response.write(_data({"type": "transcript.text.done", "text": text, "usage": usage}))
    await response.write(b"data: [DONE]" + CRLF_EVENT)
    await response.write_eof()
    return response


def _data(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + CRLF_EVENT  # CRLF, as recorded


# --- speech -------------------------------------------------------------------------------
async def _speech(request: web.Request, sim: Any, model: str, body: dict[str, Any],
                  fault: str | None) -> web.StreamResponse:
    text = body.get("input")
    if not isinstance(text, str) or not text:
        return _error(400, "Missing required parameter: 'input'.", "input")
    if not body.get("voice"):
        return _error(400, "Missing required parameter: 'voice'.", "voice")
    sse = body.get("stream_format") == "sse"
    if sse and model.startswith("tts-1"):
        return _error(400, f"stream_format 'sse' is not supported for {model}.", "stream_format")
    fmt = str(body.get("response_format") or "mp3")
    made = samples.audio(fmt, max(0.5, len(text) / 15))
    if made is None:
        return _error(400, f"The simulator makes mp3, wav and pcm, not {fmt}.", "response_format")
    audio, content_type = made
    delay = float(request.headers.get("x-sim-token-ms", sim.settings.token_ms)) / 1000
    chunks = [audio[i:i + SPEECH_CHUNK] for i in range(0, len(audio), SPEECH_CHUNK)]
    headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store"} \
        if sse else {"Content-Type": content_type}
    response = web.StreamResponse(headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i, chunk in enumerate(chunks):
        if fault == "stall" and i == len(chunks) // 2:
            await asyncio.sleep(3600)
        if delay and i:
            await asyncio.sleep(delay)
        await response.write(_data({"type": "speech.audio.delta",
                                    "audio": base64.b64encode(chunk).decode()}) if sse else chunk)
    if sse:
        input_tokens, output_tokens = math.ceil(len(text) / 4), len(chunks) * 12
        await response.write(_data({"type": "speech.audio.done", "usage": {
            "input_tokens": input_tokens, "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens}}))
        await response.write(b"data: [DONE]" + CRLF_EVENT)
    await response.write_eof()
    return response
