"""The recorded wire samples (tests/fixtures/contract, see its README.md) and the golden
files (tests/golden): loading them, decoding streams with the gateway's own SSE decoder,
and comparing bytes with a golden file.

Golden files hold bytes the gateway makes itself (the events that end a blocked stream,
an error inside a stream). A test fails on any difference; to accept a deliberate change,
run the tests with UPDATE_GOLDEN=1, which rewrites the files, and review the diff."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import orjson

from gateway.core.sse import Decoder, Event
from policies.wire import Slot

CONTRACT = Path(__file__).parent / "fixtures" / "contract"
GOLDEN = Path(__file__).parent / "golden"


def raw(name: str) -> bytes:
    return (CONTRACT / name).read_bytes()


def sample(name: str) -> Any:
    """A JSON sample, freshly parsed (tests may change it)."""
    return json.loads(raw(name))


def decode(data: bytes) -> list[Event]:
    """Every event in `data`, as the relay's decoder reads them."""
    decoder = Decoder(1 << 24)
    return decoder.feed(data) + decoder.close()


def recorded(name: str) -> list[Event]:
    """The events of a recorded stream."""
    return decode(raw(name))


def objects(events: list[Event]) -> list[tuple[bytes | None, dict[str, Any]]]:
    """The events parsed, less an end marker ([DONE])."""
    return [(name, orjson.loads(data)) for name, data in events if data != b"[DONE]"]


def unescape(pieces: list[bytes]) -> str:
    """What `output_text` pieces (JSON string bodies, escapes kept) say, joined."""
    return "".join(orjson.loads(b'"' + piece + b'"') for piece in pieces)


def slot_paths(body: Any, slots: list[Slot]) -> list[tuple[str | None, str]]:
    """Each slot as (its dotted path in `body`, its text). A slot whose container is not
    part of the body (a read-only copy, such as a schema's property name) has path None."""
    where: dict[int, tuple[Any, ...]] = {}
    stack: list[tuple[Any, tuple[Any, ...]]] = [(body, ())]
    while stack:
        node, path = stack.pop()
        where[id(node)] = path
        items = node.items() if isinstance(node, dict) else enumerate(node)
        stack += [(v, (*path, k)) for k, v in items if isinstance(v, (dict, list))]
    out: list[tuple[str | None, str]] = []
    for container, key in slots:
        found = where.get(id(container))
        out.append((None if found is None else ".".join(map(str, (*found, key))), container[key]))
    return out


def golden(name: str, data: bytes) -> None:
    """`data` must equal tests/golden/`name` byte for byte (UPDATE_GOLDEN=1 rewrites it)."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    assert path.exists(), f"{path} is missing: run the tests with UPDATE_GOLDEN=1 to write it"
    expected = path.read_bytes()
    if data != expected:
        diff = "\n".join(difflib.unified_diff(
            expected.decode(errors="replace").splitlines(), data.decode(errors="replace").splitlines(),
            f"golden/{name}", "now", lineterm=""))
        raise AssertionError(f"bytes differ from golden/{name} (UPDATE_GOLDEN=1 accepts them):\n{diff}")
