"""What the translator tests share: the recorded wire samples (tests/fixtures/contract),
a backend stream run through a stream translator as the relay runs it (decoded event
by event, then closed), and the checks that a translated Responses stream is one a
client cannot tell from a native one: consecutive sequence numbers, every event valid
for the openai SDK's own types, and the same events, with the same fields, as the
recorded native stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.core.sse import Decoder
from gateway.translate.base import Target, Translator

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "contract"
TARGET = Target("the-alias", "backend-model", 1024, "0123456789abcdef0123456789abcdef",
                created=1_760_000_000)
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def sse(name: str) -> list[tuple[bytes | None, bytes]]:
    decoder = Decoder()
    return decoder.feed((FIXTURES / name).read_bytes()) + decoder.close()


def translate_stream(translator: Translator, body: dict[str, Any], events: list[tuple[bytes | None, bytes]],
                     target: Target = TARGET) -> list[dict[str, Any]]:
    """The client's events for these backend events, each checked as the SDK reads it."""
    stream = translator.stream(body, target)
    out = [e for name, data in events for e in stream.feed(name, data)] + stream.close()
    parsed = []
    for name, data in out:
        event = orjson.loads(data)
        assert name == event["type"].encode()  # the `event:` line names the JSON's type
        if event["type"] != "error":  # the live API's nested error, not the SDK's flat type
            EVENTS.validate_python(event)
        parsed.append(event)
    assert [e["sequence_number"] for e in parsed] == list(range(len(parsed)))
    return parsed


def valid_response(response: dict[str, Any]) -> dict[str, Any]:
    Response.model_validate(response)
    return response


def native(name: str) -> list[dict[str, Any]]:
    return [orjson.loads(data) for _, data in sse(name)]


def shape(events: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """Each event's type and fields, a run of deltas as one; `obfuscation` (padding the
    gateway does not add) left out."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for event in events:
        entry = (event["type"], tuple(sorted(k for k in event if k != "obfuscation")))
        if not (out and out[-1] == entry and event["type"].endswith(".delta")):
            out.append(entry)
    return out


def item_keys(item: dict[str, Any]) -> set[str]:
    return set(item) - {"phase"}
