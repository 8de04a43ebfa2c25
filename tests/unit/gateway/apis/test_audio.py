"""The audio adapters against the recorded wire samples: transcription usage of both
kinds (tokens, duration), verbose answers, the streamed transcript and speech events
with their usage, what a filter reads and how a refused transcript ends, and speech
priced by its input's characters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.apis import audio
from gateway.apis.audio import SPEECH, TRANSCRIPTIONS, TRANSLATIONS
from gateway.core.sse import Decoder
from policies import ContentBlocked, Usage
from policies.ratelimit import PricingConfig, cost_micros

SAMPLES = Path(__file__).resolve().parents[3] / "fixtures" / "contract"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def events(name: str) -> list[tuple[bytes | None, bytes]]:
    decoder = Decoder()
    return decoder.feed((SAMPLES / name).read_bytes()) + decoder.close()


def test_transcription_usage_in_tokens_or_in_seconds() -> None:
    answers = sample("audio-transcriptions.json")
    tokens = TRANSCRIPTIONS.usage(answers["gpt_4o_mini_transcribe_json"]["body"])
    assert tokens == Usage(17, 11)
    seconds = TRANSCRIPTIONS.usage(answers["whisper_1_json"]["body"])
    assert seconds == Usage(audio_seconds=2, by_units=True)
    docs = TRANSCRIPTIONS.usage(answers["gpt_4o_transcribe_docs_example"]["body"])
    assert docs is not None and (docs.prompt_tokens, docs.completion_tokens) == (14, 45)
    assert not TRANSCRIPTIONS.answer_error(answers["whisper_1_json"]["body"])
    assert TRANSCRIPTIONS.answer_error(answers["error_invalid_language"]["body"])


def test_the_files_length_counts_when_the_answer_says_nothing() -> None:
    # text, srt and vtt answers carry no usage: the file's own length (rounded up).
    assert TRANSCRIPTIONS.used({}, None, 7.2) == Usage(audio_seconds=8, by_units=True)
    # tokens reported: priced by them, the seconds counted beside them.
    used = TRANSCRIPTIONS.used({}, Usage(17, 11), 2.0)
    assert used == Usage(17, 11, audio_seconds=2) and not used.by_units
    # reserved before the call: the header's figure, at least a second
    assert TRANSCRIPTIONS.expected({}, 3.5).audio_seconds == 4
    assert TRANSCRIPTIONS.expected({}, None).audio_seconds == 1
    whisper = PricingConfig(per_audio_second=0.0001)
    assert cost_micros(Usage(audio_seconds=8, by_units=True), whisper) == 800


def test_a_verbose_answer_and_what_a_filter_reads_in_it() -> None:
    body = sample("audio-transcriptions-verbose.json")["body"]
    assert TRANSCRIPTIONS.usage(body) == Usage(audio_seconds=2, by_units=True)
    texts = TRANSCRIPTIONS.completion_texts(body)
    assert texts[0].value == body["text"]
    assert [t.value for t in texts if t.key[0] == "segments"] == [s["text"] for s in body["segments"]]
    assert [t.value for t in texts if t.key[0] == "words"] == [w["word"] for w in body["words"]]
    without = {k: v for k, v in body.items() if k != "usage"}
    assert TRANSCRIPTIONS.usage(without) == Usage(audio_seconds=2, by_units=True)  # its duration


def test_a_refused_transcript_is_withheld_whole() -> None:
    with pytest.raises(ContentBlocked, match=r"transcript was filtered.*violence"):
        TRANSCRIPTIONS.block_completion({"text": "x"}, "text", {"violence": {"filtered": True}})


def test_the_streamed_transcript_its_text_and_its_usage() -> None:
    usage, deltas, final = None, [], []
    stream = events("audio-transcriptions-stream.sse")
    assert TRANSCRIPTIONS.is_end(stream[-1][1])
    for _, data in stream[:-1]:
        event = orjson.loads(data)
        delta = TRANSCRIPTIONS.stream_delta(event)
        if delta is not None:
            deltas.append(delta.value)
        final += [t.value for t in TRANSCRIPTIONS.stream_final(event)]
        if TRANSCRIPTIONS.may_carry_usage(data):
            usage = TRANSCRIPTIONS.stream_usage(event, usage)
    assert "".join(deltas) == "Hello world, this is a test." == final[0]
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert TRANSCRIPTIONS.output_text(stream[0][1]) == []  # never counted as text
    # The gateway's framing: data-only events, then [DONE].
    assert TRANSCRIPTIONS.encode(None, b"{}") == b"data: {}\n\n"
    assert TRANSCRIPTIONS.end() == b"data: [DONE]\n\n"
    ending = TRANSCRIPTIONS.blocked_end(b"", b"", {"hate": {"filtered": True, "severity": "high"}})
    closing = Decoder().feed(ending)
    assert orjson.loads(closing[0][1])["error"]["code"] == "content_filter"
    assert closing[1][1] == b"[DONE]"


def test_speech_reports_tokens_only_in_its_done_event() -> None:
    usage = None
    stream = events("audio-speech-stream.sse")
    for _, data in stream[:-1]:
        if SPEECH.may_carry_usage(data):
            usage = SPEECH.stream_usage(orjson.loads(data), usage)
    assert usage == Usage(10, 93)
    body = {"model": "gpt-4o-mini-tts", "input": "Hello, world!", "voice": "alloy",
            "stream_format": "sse"}
    SPEECH.validate(body)
    assert SPEECH.is_stream(body) and not SPEECH.is_stream({**body, "stream_format": "audio"})
    assert SPEECH.used(body, usage, None) == Usage(10, 93, characters=13)
    assert SPEECH.used(body, None, None) == Usage(characters=13, by_units=True)
    assert SPEECH.expected(body, None) == Usage(characters=13)
    styled = {**body, "instructions": "calm"}
    assert [key for _, key in SPEECH.prompt_texts(styled)] == ["input", "instructions"]
    tts = PricingConfig(per_million_characters=15)
    assert cost_micros(Usage(characters=13, by_units=True), tts) == 195


def test_a_pricing_must_name_a_price() -> None:
    with pytest.raises(ValueError, match="names no price"):
        PricingConfig(currency="EUR")
    assert PricingConfig(input_per_million=0, output_per_million=0).output_per_million == 0


def test_translations_and_the_routes() -> None:
    assert TRANSLATIONS.operation == "audio/translations" and TRANSLATIONS.form
    paths = {r.path for r in audio.ROUTES}
    assert paths == {f"{prefix}/audio/{op}" for op in ("transcriptions", "translations", "speech")
                     for prefix in ("/v1", "/openai/v1", "/openai/deployments/{deployment}")}
