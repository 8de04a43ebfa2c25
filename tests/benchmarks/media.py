"""The benchmark's images-and-audio scenarios (part of `python -m tests.benchmarks.bench`;
`--media-only` runs these alone): a transcription of a 25 MB WAV uploaded as the openai
SDK sends it (text fields first, so the gateway streams the file on as it arrives), and
a speech answer of ~40 s of MP3 streamed back chunk by chunk, each straight against the
simulator and through the gateway. Reported: time to the first byte of the answer (the
upload's end to the transcript's start; the request to the first audio chunk), the
whole request, and the gateway's peak RSS during the scenario (its high-water mark reset
first through /proc/<pid>/clear_refs)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from gateway.simulator import samples
from tests.benchmarks.loadgen import Load, percentiles

BOUNDARY = "bench-boundary-5d41402abc4b2a76"
SPEECH_INPUT = ("The gateway streams speech back to the client chunk by chunk as the upstream "
                "produces it, and counts every character of the input for the ledger. ") * 4


def deployments(sim_port: int) -> list[dict[str, Any]]:
    """What the gateway's config adds for these scenarios."""
    base = f"http://127.0.0.1:{sim_port}/v1"
    timeouts = {"response": 300, "idle": 300}
    return [{"name": "bench-whisper", "model": "whisper-1", "pricing": {"per_audio_second": 0.0001},
             "backends": [{"url": base, "api": "openai", "timeouts": timeouts}]},
            {"name": "bench-tts", "model": "tts-1", "pricing": {"per_million_characters": 15},
             "backends": [{"url": base, "api": "openai", "timeouts": timeouts}]}]


def wav_file(size: int) -> Path:
    """A WAV of `size` bytes on disk, written in blocks."""
    path = Path(tempfile.mkdtemp(prefix="bench-media-")) / "upload.wav"
    samples.write_wav(path, size)
    return path


def _form_head(model: str) -> bytes:
    fields = "".join(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                     for k, v in (("model", model), ("response_format", "json")))
    return (fields + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="upload.wav"\r\nContent-Type: audio/wav\r\n\r\n').encode()


async def _upload(session: aiohttp.ClientSession, url: str, model: str, path: Path, size: int,
                  headers: dict[str, str]) -> tuple[float, float]:
    """(ms from the upload's last byte to the answer's first, ms for the whole request)."""
    head, tail = _form_head(model), f"\r\n--{BOUNDARY}--\r\n".encode()
    length = len(head) + size + len(tail)
    sent: list[float] = []

    async def body() -> AsyncIterator[bytes]:
        yield head
        # The file was just written: reads come from the page cache, as a client's would.
        with path.open("rb") as f:
            while chunk := f.read(256 * 1024):
                yield chunk
        yield tail
        sent.append(time.perf_counter())

    started = time.perf_counter()
    async with session.post(url, data=body(), headers={
            **headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(length)}) as r:
        first = await r.content.readany()
        arrived = time.perf_counter()
        await r.read()
        if r.status != 200 or not first:
            raise RuntimeError(f"upload answered {r.status}")
    return (arrived - sent[-1]) * 1000, (time.perf_counter() - started) * 1000


async def _speech(session: aiohttp.ClientSession, url: str, model: str,
                  headers: dict[str, str]) -> tuple[float, float, int]:
    started = time.perf_counter()
    async with session.post(url, json={"model": model, "voice": "alloy", "input": SPEECH_INPUT},
                            headers={**headers, "x-sim-token-ms": "2"}) as r:
        first = await r.content.readany()
        ttfb = time.perf_counter() - started
        rest = len(first)
        while chunk := await r.content.readany():
            rest += len(chunk)
        if r.status != 200 or not first:
            raise RuntimeError(f"speech answered {r.status}")
    return ttfb * 1000, (time.perf_counter() - started) * 1000, rest


def _repeated(rounds: int, one: Callable[[aiohttp.ClientSession], Awaitable[tuple[float, float]]]) -> Load:
    """`one` request `rounds` times in a row: its time to the first byte and to the end."""
    async def run() -> Load:
        ttfb, total, errors = [], [], 0
        started = time.perf_counter()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            for _ in range(rounds):
                try:
                    first, whole = await one(session)
                except (aiohttp.ClientError, RuntimeError):
                    errors += 1
                    continue
                ttfb.append(first)
                total.append(whole)
        return Load(len(total), errors, time.perf_counter() - started, percentiles(total),
                    percentiles(ttfb))
    return asyncio.run(run())


def measure_upload(base: str, model: str, path: Path, headers: dict[str, str], rounds: int) -> Load:
    size = path.stat().st_size
    return _repeated(rounds, lambda session: _upload(
        session, base + "/v1/audio/transcriptions", model, path, size, headers))


def measure_speech(base: str, model: str, headers: dict[str, str], rounds: int) -> Load:
    async def one(session: aiohttp.ClientSession) -> tuple[float, float]:
        first, whole, _ = await _speech(session, base + "/v1/audio/speech", model, headers)
        return first, whole

    return _repeated(rounds, one)


def reset_peak(pid: int) -> None:
    """The kernel's VmHWM starts again from the current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
