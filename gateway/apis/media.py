"""What the image and audio adapters (`images`, `audio`) add to the adapter interface,
and the parts of it they all answer alike.

    MediaApi  (an Api)
     form        the request is a multipart form with files (edits, transcriptions)
     files       the form's file parts (for the OpenAPI document)
     measures    the form's part whose audio length counts (transcriptions: "file")
     checked     form fields the policies read before the call (they must come before a
                 file that streams: `gateway.http.multipart`)
     output_type gen_ai.output.type (image, speech, text)
     expected    the media units a request expects before the call (reserved)
     used        the units it used, from the answer's usage, the request and the upload
     blocked     how a prompt refused by a content filter reads on this API's routes

Media requests are priced by tokens when the upstream reports them (gpt-image-1,
gpt-4o-transcribe, gpt-4o-mini-tts streams) and by their units otherwise; the units are
counted in both cases (quotas, the ledger). The gateway never counts their tokens
itself: audio and image tokens cannot be read off the text (`output_text` is empty)."""

from __future__ import annotations

import abc
import math
from collections.abc import Hashable
from typing import Any, ClassVar

import orjson

from gateway.apis.base import Api, StoresNothing, declares_abstract
from gateway.apis.shapes import data_event, openai_stream_error
from policies import ContentBlocked, PolicyError, Usage
from policies.wire import Results

DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"


def truthy(value: Any) -> bool:
    """A boolean field, as JSON (true) or as a form's text ("true")."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def whole(value: Any) -> int | None:
    """A count, as JSON (2) or as a form's text ("2"); None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def seconds_of(value: float | None) -> int:
    """Whole seconds, rounded up (as audio is billed)."""
    return math.ceil(value - 1e-9) if value and value > 0 else 0


class MediaApi(StoresNothing, Api):
    form: ClassVar[bool]
    files: ClassVar[tuple[str, ...]] = ()
    measures: ClassVar[str | None] = None
    checked: ClassVar[frozenset[str]] = frozenset()
    output_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None) and not declares_abstract(cls):
            missing = [a for a in ("form", "output_type") if not hasattr(cls, a)]
            if missing:
                raise TypeError(f"media adapter {cls.__name__} does not define {', '.join(missing)}")

    # --- units ------------------------------------------------------------------------
    @abc.abstractmethod
    def expected(self, body: dict[str, Any], seconds: float | None) -> Usage:
        """The units this request expects, before the call (`seconds`: the upload's
        length as far as its headers say, for audio in)."""

    @abc.abstractmethod
    def used(self, body: dict[str, Any], usage: Usage | None, seconds: float | None) -> Usage:
        """What an answered request used: the answer's usage (None when it reported
        none) completed with its units."""

    def blocked(self, exc: ContentBlocked) -> PolicyError:
        """A prompt a content filter refused, as this API's clients expect to read it."""
        return exc

    # --- what every media API answers alike -----------------------------------------------
    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        return False  # a media stream's closing event carries its usage unasked

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return [container[key] for container, key in self.prompt_texts(body)]

    def prompt_framing(self, body: dict[str, Any]) -> int:
        return 0

    def drop_event(self, event: dict[str, Any], strip_usage: bool) -> bool:
        return False

    def output_text(self, data: bytes) -> list[bytes]:
        return []  # never counted with a text tokenizer (see the module's docstring)

    def is_end(self, data: bytes) -> bool:
        return data == DONE

    def is_keepalive(self, event: dict[str, Any]) -> bool:
        return False

    def answer_facts(self, body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        return "", ()  # media answers name no model and no finish reason

    def annotate(self, body: dict[str, Any], prompt: Results, outputs: dict[Hashable, Results]) -> None:
        """No place for filter results, unless the API overrides it."""


class DataStream:
    """The framing of the audio streams: `data: <json>` events ending with
    `data: [DONE]` (transcripts and speech, as recorded: no `event:` lines)."""

    def encode(self, name: bytes | None, data: bytes) -> bytes:
        return data_event(data)

    def end(self) -> bytes:
        return DONE_EVENT

    def stream_error(self, code: str, message: str, last: bytes) -> bytes:
        # A top-level `error`: the openai SDK raises APIError on it.
        return openai_stream_error(code, message) + DONE_EVENT


def error_event(code: str, message: str, **extra: Any) -> bytes:
    """The JSON of an error event (the openai SDK raises on a top-level `error`)."""
    return orjson.dumps({"type": "error", "error": {"code": code, "message": message,
                                                   "type": "invalid_request_error", **extra}})
