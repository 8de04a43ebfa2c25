"""Wire samples for the translators' golden tests: recorded samples in
(tests/fixtures/contract), translated output compared with what is kept in
tests/fixtures/translate (written anew with UPDATE_GOLDEN=1, then read and reviewed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gateway.core.sse import Decoder
from gateway.translate.base import Event, StreamTranslator, Target

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
RECORDED = FIXTURES / "contract"
GOLDEN = FIXTURES / "translate"


def target(prompt: int = 0) -> Target:
    return Target("claude-sonnet-4-5", "claude-sonnet-4-5", 1024, "req_0123", lambda: prompt, 1764000000)


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def events(name: str) -> list[Event]:
    """A recorded stream's events, as the relay's decoder hands them to a translator."""
    decoder = Decoder(1 << 20)
    return decoder.feed((RECORDED / name).read_bytes()) + decoder.close()


def translate(stream: StreamTranslator, source: list[Event]) -> list[Event]:
    """What the relay does: every backend event fed in order, then close."""
    out = [e for name, data in source for e in stream.feed(name, data)]
    return out + stream.close()


def sse(out: list[Event]) -> str:
    """Translated events as their wire text (the client API's framing)."""
    return "".join((f"event: {name.decode()}\n" if name else "") + f"data: {data.decode()}\n\n"
                   for name, data in out)


def golden(name: str, produced: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(produced)
    assert produced == path.read_text(), f"{name} differs from its golden sample"


def golden_json(name: str, produced: Any) -> None:
    golden(name, json.dumps(produced, indent=2, ensure_ascii=False) + "\n")
