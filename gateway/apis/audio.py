"""Audio: transcriptions and translations (`/audio/transcriptions`, `/audio/translations`:
a multipart form with the audio `file`) and speech (`/audio/speech`: JSON in, audio bytes
out), OpenAI's and Azure OpenAI's shape.

A transcript comes as JSON (`json`, `verbose_json`: `text`, and segments and words) or
as text with its own content type (`text`, `srt`, `vtt`, relayed as they are); usage is
`{type: "tokens", input_tokens, output_tokens, ...}` (gpt-4o-transcribe) or
`{type: "duration", seconds}` (whisper), and the text formats carry none, so that the
audio's seconds are then the file's as `gateway.core.audio_length` reads them.
gpt-4o-transcribe streams (`stream: true`) `data:` events: `transcript.text.delta`, one
`transcript.text.done` with the whole text and the usage, then `data: [DONE]`.

Speech answers are audio bytes in the requested format, relayed as they come; with
`stream_format: "sse"` they are `speech.audio.delta` events and a `speech.audio.done`
that carries the tokens, the only place speech reports any. Speech is otherwise priced
by the characters of its input.

A transcript a content filter refuses is withheld whole (400 `content_filter`); a
streamed one ends with an error event naming the filter, after what was released."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, StrictStr

from gateway.apis.base import ModelRoute
from gateway.apis.media import DONE_EVENT, DataStream, MediaApi, error_event, seconds_of, text, truthy
from gateway.apis.shapes import as_int, data_event, usage_counts
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies import ContentBlocked, Usage
from policies.wire import Results, Slot, Text


class TranscriptionBody(BaseModel):
    """The text fields of a transcription's form: every value arrives as text."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    prompt: str | None = None
    response_format: str | None = None
    language: str | None = None
    temperature: float | None = None
    stream: bool | None = None


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    input: StrictStr
    voice: StrictStr | dict[str, Any]
    instructions: StrictStr | None = None
    response_format: StrictStr | None = None
    speed: float | None = None
    stream_format: StrictStr | None = None


class Transcriptions(DataStream, MediaApi):
    name = "audio.transcriptions"
    operation = Operation.TRANSCRIPTIONS
    gen_ai_operation = "generate_content"
    output_type = "text"
    generates = True
    form = True
    files = ("file",)
    measures = "file"
    checked = frozenset({"prompt"})
    Body: ClassVar[type[BaseModel]] = TranscriptionBody
    known = frozenset({
        "file", "model", "prompt", "response_format", "temperature", "language", "stream",
        "include", "include[]", "timestamp_granularities", "timestamp_granularities[]",
        "chunking_strategy", "keywords", "keywords[]", "languages", "languages[]",
        "known_speaker_names", "known_speaker_names[]", "known_speaker_references",
        "known_speaker_references[]"})

    def is_stream(self, body: dict[str, Any]) -> bool:
        return truthy(body.get("stream"))

    # --- prompt -----------------------------------------------------------------------
    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        return [(body, "prompt")] if isinstance(body.get("prompt"), str) else []

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        return None

    def outputs(self, body: dict[str, Any]) -> int:
        return 1

    # --- units ------------------------------------------------------------------------
    def expected(self, body: dict[str, Any], seconds: float | None) -> Usage:
        # At least a second: a quota that is used up refuses a file of unknown length.
        return Usage(audio_seconds=max(1, seconds_of(seconds)))

    def used(self, body: dict[str, Any], usage: Usage | None, seconds: float | None) -> Usage:
        if usage is None:  # text, srt and vtt answers report nothing: the file's length
            return Usage(audio_seconds=seconds_of(seconds), by_units=True)
        if not usage.audio_seconds:
            usage.audio_seconds = seconds_of(seconds)
        return usage

    # --- whole answers ----------------------------------------------------------------
    def usage(self, body: dict[str, Any]) -> Usage | None:
        found = transcription_usage(body.get("usage"))
        if found is None and isinstance(body.get("duration"), (int, float)):
            found = Usage(audio_seconds=seconds_of(float(body["duration"])), by_units=True)
        return found

    def answer_error(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("error"), dict) and "text" not in body

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        texts = [Text("text", (body, "text"))] if isinstance(body.get("text"), str) else []
        for name, key in (("segments", "text"), ("words", "word")):
            items = body.get(name)
            for i, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, dict) and isinstance(item.get(key), str):
                    texts.append(Text((name, i), (item, key)))
        return texts

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        # A transcript has no place to say it was refused: it is withheld whole.
        which = ", ".join(sorted(result)) or "a filter"
        raise ContentBlocked(f"The transcript was filtered due to the content management policy "
                             f"({which}).", result=result)

    # --- streams ----------------------------------------------------------------------
    def stream_usage(self, event: dict[str, Any], usage: Usage | None) -> Usage | None:
        if event.get("type") == "transcript.text.done":
            return transcription_usage(event.get("usage")) or usage
        return usage

    def stream_delta(self, event: dict[str, Any]) -> Text | None:
        if event.get("type") == "transcript.text.delta" and isinstance(event.get("delta"), str) \
                and event["delta"]:
            return Text("text", (event, "delta"))
        return None

    def stream_final(self, event: dict[str, Any]) -> list[Text]:
        if event.get("type") == "transcript.text.done" and isinstance(event.get("text"), str):
            return [Text("text", (event, "text"))]
        return []

    def blocked_end(self, first: bytes, last: bytes, result: Results) -> bytes:
        message = "The transcript was filtered due to the content management policy."
        return data_event(error_event("content_filter", message,
                                      content_filter_result=result)) + DONE_EVENT


class Translations(Transcriptions):
    name = "audio.translations"
    operation = Operation.TRANSLATIONS
    known = frozenset({"file", "model", "prompt", "response_format", "temperature"})


class Speech(DataStream, MediaApi):
    name = "audio.speech"
    operation = Operation.SPEECH
    gen_ai_operation = "generate_content"
    output_type = "speech"
    generates = True
    form = False
    Body: ClassVar[type[BaseModel]] = SpeechBody
    known = frozenset({"model", "input", "voice", "instructions", "response_format", "speed",
                       "stream_format"})

    def is_stream(self, body: dict[str, Any]) -> bool:
        return body.get("stream_format") == "sse"

    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        return [(body, key) for key in ("input", "instructions") if isinstance(body.get(key), str)]

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        return None

    def outputs(self, body: dict[str, Any]) -> int:
        return 1

    def expected(self, body: dict[str, Any], seconds: float | None) -> Usage:
        return Usage(characters=len(text(body.get("input"))))

    def used(self, body: dict[str, Any], usage: Usage | None, seconds: float | None) -> Usage:
        characters = len(text(body.get("input")))
        if usage is None:  # audio bytes report nothing: priced by the input's characters
            return Usage(characters=characters, by_units=True)
        usage.characters = characters
        return usage

    def usage(self, body: dict[str, Any]) -> Usage | None:
        return None  # a speech answer is audio, not JSON

    def answer_error(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("error"), dict)

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        return []

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        """Audio is not text: nothing to block."""

    def stream_usage(self, event: dict[str, Any], usage: Usage | None) -> Usage | None:
        if event.get("type") == "speech.audio.done":
            return usage_counts(event.get("usage"), "input_tokens", "output_tokens",
                                "input_tokens_details", "output_tokens_details") or usage
        return usage

    def stream_delta(self, event: dict[str, Any]) -> Text | None:
        return None

    def stream_final(self, event: dict[str, Any]) -> list[Text]:
        return []

    def blocked_end(self, first: bytes, last: bytes, result: Results) -> bytes:
        message = "The output was filtered due to the content management policy."
        return data_event(error_event("content_filter", message)) + DONE_EVENT


def transcription_usage(usage: Any) -> Usage | None:
    """`{type: "tokens", input_tokens, output_tokens, input_token_details}` or
    `{type: "duration", seconds}`."""
    if type(usage) is not dict:
        return None
    if usage.get("type") == "duration" and isinstance(usage.get("seconds"), (int, float)):
        return Usage(audio_seconds=seconds_of(float(usage["seconds"])), by_units=True)
    found = usage_counts(usage, "input_tokens", "output_tokens", "input_token_details",
                         "output_token_details")
    if found is not None and found.completion_tokens == 0 and "output_tokens" not in usage:
        found.completion_tokens = max(0, as_int(usage.get("total_tokens")) - found.prompt_tokens)
    return found


TRANSCRIPTIONS = Transcriptions()
TRANSLATIONS = Translations()
SPEECH = Speech()

ROUTES = tuple(
    ModelRoute(path.format(op=op), api, flavour)
    for op, api in (("transcriptions", TRANSCRIPTIONS), ("translations", TRANSLATIONS),
                    ("speech", SPEECH))
    for path, flavour in (("/v1/audio/{op}", Flavour.OPENAI),
                          ("/openai/v1/audio/{op}", Flavour.OPENAI),
                          ("/openai/deployments/{{deployment}}/audio/{op}", Flavour.AZURE_OPENAI))
)
