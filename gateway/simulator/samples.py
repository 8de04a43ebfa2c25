"""Real media for the simulator's answers, made without an encoder: a small PNG (zlib and
CRCs, as the format says), WAV (24 kHz mono 16-bit PCM, a quiet tone), MP3 (MPEG-2 Layer
III frames at 24 kHz, as OpenAI's speech answers begin `FF F3 C4 C4`, whose bodies are
zero: silence that every decoder reads), and transcripts in each of the formats the
transcription API answers with (json, verbose_json, text, srt, vtt)."""

from __future__ import annotations

import math
import struct
import zlib
from functools import cache
from pathlib import Path
from typing import Any

RATE = 24_000  # the speech answers' sample rate
MP3_HEADER = b"\xff\xf3\xc4\xc4"  # MPEG-2 Layer III, 128 kbit/s, 24 kHz, mono
MP3_FRAME = 384  # bytes: 72 x 128000 / 24000
MP3_FRAME_SECONDS = 576 / RATE


@cache
def png(width: int = 16, height: int = 16) -> bytes:
    """An RGBA gradient, every chunk with its CRC."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                                              128, 255)) for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def wav_header(frames: int, rate: int = RATE) -> bytes:
    data = frames * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", data))


def pcm(seconds: float, rate: int = RATE) -> bytes:
    """A quiet 440 Hz tone, 16-bit little-endian."""
    frames = int(seconds * rate)
    period = [int(3000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate // 40)]
    samples = (period * (frames // len(period) + 1))[:frames]
    return struct.pack(f"<{frames}h", *samples)


def wav(seconds: float, rate: int = RATE) -> bytes:
    body = pcm(seconds, rate)
    return wav_header(len(body) // 2, rate) + body


def write_wav(path: Path, size: int) -> None:
    """A WAV of `size` bytes at `path`, written in blocks (never whole in memory): the
    large uploads of tests and benchmarks."""
    frames = (size - 44) // 2
    block = pcm(1.0)
    with path.open("wb") as out:
        out.write(wav_header(frames))
        left = frames * 2
        while left:
            piece = block[:left]
            out.write(piece)
            left -= len(piece)


def mp3(seconds: float) -> bytes:
    frames = max(1, round(seconds / MP3_FRAME_SECONDS))
    return (MP3_HEADER + bytes(MP3_FRAME - 4)) * frames


def audio(fmt: str, seconds: float) -> tuple[bytes, str] | None:
    """The audio of a speech answer in `fmt`, and its content type (None: a format the
    simulator does not make)."""
    if fmt in ("mp3", ""):
        return mp3(seconds), "audio/mpeg"
    if fmt == "wav":
        return wav(seconds), "audio/wav"
    if fmt == "pcm":
        return pcm(seconds), "audio/pcm"
    return None


# --- transcripts ---------------------------------------------------------------------------
def _stamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{separator}{ms % 1000:03d}"


def srt(text: str, seconds: float) -> str:
    return f"1\n{_stamp(0, ',')} --> {_stamp(seconds, ',')}\n{text}\n\n\n"


def vtt(text: str, seconds: float) -> str:
    return f"WEBVTT\n\n{_stamp(0, '.')} --> {_stamp(seconds, '.')}\n{text}\n\n"


def verbose(text: str, seconds: float, task: str, usage: dict[str, Any],
            words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": task, "language": "english", "duration": round(seconds, 2), "text": text,
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": round(seconds, 2), "text": " " + text,
                      "tokens": list(range(50364, 50364 + len(text.split()))), "temperature": 0.0,
                      "avg_logprob": -0.25, "compression_ratio": 0.8, "no_speech_prob": 0.01}],
        "usage": usage,
    }
    if words:
        spoken = text.replace(",", "").replace(".", "").replace("!", "").split()
        step = seconds / max(1, len(spoken))
        body["words"] = [{"word": w, "start": round(i * step, 2), "end": round((i + 1) * step, 2)}
                         for i, w in enumerate(spoken)]
    return body
