"""Audio lengths read from the bytes as they pass: WAV headers (with a promised size, or
streamed with none), MP3 frames (counted, or from a Xing header, past an ID3 tag; the
recorded speech answer's first frame), FLAC's STREAMINFO, and whatever else is given up
on; the same figure however the file is cut into chunks."""

from __future__ import annotations

import base64
import json
import random
import struct
from pathlib import Path

import pytest

from gateway.core.audio_length import Meter, frame_header, measure
from gateway.simulator import samples

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "contract"


def chunked(data: bytes, sizes: list[int]) -> float | None:
    meter, at = Meter(), 0
    for size in sizes:
        meter.feed(data[at:at + size])
        at += size
    meter.feed(data[at:])
    meter.end()
    return meter.seconds()


def test_wav_from_its_header() -> None:
    data = samples.wav(2.5)
    assert measure(data) == pytest.approx(2.5)
    meter = Meter()
    meter.feed(data[:100])  # the header alone promises the length
    assert meter.seconds() == pytest.approx(2.5)
    # As OpenAI streams it: sizes 0xFFFFFFFF, the length is what arrives.
    streamed = bytearray(data)
    streamed[4:8] = streamed[40:44] = b"\xff\xff\xff\xff"
    assert measure(bytes(streamed)) == pytest.approx(2.5)


def test_mp3_frames_counted_past_an_id3_tag() -> None:
    data = samples.mp3(3.0)
    assert measure(data) == pytest.approx(3.0, abs=0.03)
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 1, 0]) + bytes(128)  # a 128-byte tag
    assert measure(tag + data) == pytest.approx(3.0, abs=0.03)
    # A trailing ID3v1 tag ends the frames.
    assert measure(data + b"TAG" + bytes(125)) == pytest.approx(3.0, abs=0.03)


def test_the_recorded_speech_answer_begins_with_a_frame() -> None:
    first = (SAMPLES / "audio-speech-stream.sse").read_text().split("\n")[0]
    audio = base64.b64decode(json.loads(first.removeprefix("data: "))["audio"])
    frame = frame_header(audio)
    assert frame is not None and (frame.rate, frame.length, frame.samples) == (24000, 384, 576)


def test_a_xing_header_gives_the_count_at_once() -> None:
    frame = bytearray(samples.MP3_HEADER + bytes(samples.MP3_FRAME - 4))
    at = 4 + 9  # MPEG-2 mono: 9 bytes of side information
    frame[at:at + 12] = b"Info" + struct.pack(">II", 1, 1000)
    data = bytes(frame) + samples.mp3(0.5)
    assert measure(data) == pytest.approx(1000 * 576 / 24000)


def test_flac_from_its_streaminfo() -> None:
    rate, total = 16000, 16000 * 4
    info = (rate << 44) | (1 << 41) | (15 << 36) | total  # 16 kHz, stereo, 16 bit
    block = struct.pack(">HH", 4096, 4096) + b"\x00" * 6 + info.to_bytes(8, "big") + bytes(16)
    data = b"fLaC" + b"\x80\x00\x00\x22" + block + bytes(100)
    assert measure(data) == pytest.approx(4.0)


def test_what_it_cannot_read_it_leaves_alone() -> None:
    assert measure(b"OggS" + bytes(200)) is None
    assert measure(b"") is None
    assert measure(b"RIFF" + bytes(4) + b"WAVE") is None  # no fmt, no data


@pytest.mark.parametrize("seed", range(5))
def test_any_cut_gives_the_same_length(seed: int) -> None:
    rng = random.Random(seed)
    for data in (samples.wav(1.2), samples.mp3(1.2)):
        sizes = [rng.choice((1, 2, 3, 7, 100, 383, 385, 4096)) for _ in range(40)]
        assert chunked(data, sizes) == pytest.approx(measure(data))
