"""The unmodified openai SDK's images and audio calls through the gateway to the
simulator, as a client of OpenAI (`/v1`) and of Azure OpenAI (`AzureOpenAI`, which calls
`/openai/deployments/{model}/...?api-version=`): generations (base64, URL, streamed
partial images), edits with an image and a mask, transcriptions in every response
format and streamed, translations, and speech streamed to a file."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from openai import OpenAI

from gateway.core.audio_length import frame_header, measure
from gateway.simulator import samples
from tests.conftest import KEY_B, Stack
from tests.integration.media_stack import clients, with_media

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def media(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(with_media())


@pytest.fixture(params=["openai", "azure"])
def client(request: pytest.FixtureRequest, media: Stack) -> OpenAI:
    return clients(media)[request.param]


def test_image_generation_as_base64_and_as_a_url(client: OpenAI, media: Stack) -> None:
    answer = client.images.generate(model="gpt-image-1", prompt="A red hat", quality="low")
    assert answer.data is not None and answer.data[0].b64_json is not None
    assert base64.b64decode(answer.data[0].b64_json).startswith(PNG)
    assert answer.usage is not None and answer.usage.output_tokens == 272
    record = media.sim.records[-1]
    assert record.path.startswith("/openai/deployments/image-east/images/generations?api-version=")
    assert record.body["prompt"] == "A red hat"
    hd = client.images.generate(model="dall-e-3", prompt="A stop sign", response_format="url")
    assert hd.data is not None and hd.data[0].url and hd.data[0].revised_prompt
    assert media.sim.records[-1].path == "/v1/images/generations"
    assert media.sim.records[-1].body["model"] == "dall-e-3"


def test_streamed_partial_images_event_by_event(client: OpenAI) -> None:
    events = list(client.images.generate(model="gpt-image-1", prompt="A red hat", stream=True,
                                         partial_images=2))
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"]
    assert [getattr(e, "partial_image_index", None) for e in events[:2]] == [0, 1]
    completed = events[-1]
    assert completed.usage.output_tokens == 4160  # type: ignore[union-attr]
    assert base64.b64decode(completed.b64_json).startswith(PNG)  # type: ignore[union-attr]


def test_an_edit_with_an_image_and_a_mask(client: OpenAI, media: Stack) -> None:
    answer = client.images.edit(model="gpt-image-1", prompt="Add a red hat",
                                image=("photo.png", samples.png(), "image/png"),
                                mask=("mask.png", samples.png(8, 8), "image/png"), size="1024x1024")
    assert answer.usage is not None and answer.usage.input_tokens_details.image_tokens == 388
    record = media.sim.records[-1]
    assert record.operation == "images/edits" and record.body["prompt"] == "Add a red hat"
    assert record.upload_bytes >= len(samples.png()) + len(samples.png(8, 8))
    two = client.images.edit(model="gpt-image-1", prompt="Combine them",
                             image=[("a.png", samples.png(), "image/png"),
                                    ("b.png", samples.png(), "image/png")])
    assert two.usage is not None and two.usage.input_tokens_details.image_tokens == 2 * 388


def test_transcription_in_every_response_format(client: OpenAI, media: Stack) -> None:
    audio = ("hello.wav", samples.wav(2.0), "audio/wav")
    plain = client.audio.transcriptions.create(model="whisper", file=audio)
    assert plain.text and plain.usage is not None and plain.usage.seconds == 2  # type: ignore[union-attr]
    record = media.sim.records[-1]
    assert record.path.startswith("/openai/deployments/whisper-east/audio/transcriptions?")
    assert record.body["model"] == "whisper-1"
    verbose = client.audio.transcriptions.create(model="whisper", file=audio,
                                                 response_format="verbose_json",
                                                 timestamp_granularities=["word", "segment"])
    assert verbose.duration == 2.0 and verbose.words and verbose.segments
    raw = client.audio.transcriptions.with_raw_response.create(model="whisper", file=audio,
                                                               response_format="srt")
    assert raw.headers["content-type"].startswith("text/plain")
    srt = raw.parse()
    assert isinstance(srt, str) and srt.startswith("1\n00:00:00,000 --> 00:00:02,000\n")
    vtt = client.audio.transcriptions.create(model="whisper", file=audio, response_format="vtt")
    assert isinstance(vtt, str) and vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000")
    text = client.audio.transcriptions.create(model="whisper", file=audio, response_format="text")
    assert isinstance(text, str) and text.endswith("\n") and text.strip() == plain.text
    tokens = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio)
    assert tokens.usage is not None and tokens.usage.type == "tokens"


def test_a_streamed_transcription_arrives_as_events(client: OpenAI) -> None:
    events = list(client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("hello.wav", samples.wav(2.0), "audio/wav"), stream=True))
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]  # type: ignore[union-attr]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(done) == 1 and "".join(deltas) == done[0].text  # type: ignore[union-attr]
    assert done[0].usage.input_tokens > 0  # type: ignore[union-attr]


def test_translation(client: OpenAI, media: Stack) -> None:
    answer = client.audio.translations.create(model="whisper",
                                              file=("bonjour.mp3", samples.mp3(3.0), "audio/mpeg"))
    assert answer.text
    record = media.sim.records[-1]
    assert record.operation == "audio/translations" and record.upload_bytes >= len(samples.mp3(3.0))


def test_speech_streamed_to_a_file(client: OpenAI, tmp_path: Path) -> None:
    mp3 = tmp_path / "hello.mp3"
    with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="alloy", input="Hello, world! This is a test.") as speech:
        assert speech.headers["content-type"] == "audio/mpeg"
        speech.stream_to_file(mp3)
    data = mp3.read_bytes()
    assert frame_header(data) is not None and measure(data) == pytest.approx(29 / 15, abs=0.05)
    wav = tmp_path / "hello.wav"
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input="Hello there", response_format="wav") as speech:
        speech.stream_to_file(wav)
    with wave.open(io.BytesIO(wav.read_bytes())) as read:
        assert (read.getframerate(), read.getnchannels(), read.getsampwidth()) == (24000, 1, 2)
        assert read.getnframes() / 24000 == pytest.approx(11 / 15, abs=0.01)


def test_speech_events(client: OpenAI) -> None:
    answer = client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input="Hello",
                                        stream_format="sse")
    body = answer.read()
    assert b'"type":"speech.audio.delta"' in body and b'"type":"speech.audio.done"' in body
    assert body.endswith(b"data: [DONE]\n\n")


def test_the_azure_v1_route_with_api_version_preview(media: Stack) -> None:
    client = OpenAI(base_url=media.url + "/openai/v1", api_key=KEY_B, max_retries=0,
                    default_query={"api-version": "preview"})
    answer = client.audio.transcriptions.create(model="whisper",
                                                file=("a.wav", samples.wav(1.0), "audio/wav"))
    assert answer.text


def test_models_list_the_media_aliases_with_their_apis(media: Stack) -> None:
    listed = {m.id: m for m in OpenAI(base_url=media.url + "/v1", api_key=KEY_B).models.list()}
    apis = listed["whisper"].model_extra["apis"]  # type: ignore[index]
    assert {"audio.transcriptions", "audio.translations", "audio.speech", "images.generations",
            "images.edits"} <= set(apis)
