"""The recorded wire samples (tests/fixtures/contract, the project's copy of
../shared/contract; see its README: which file is which, what is unconfirmed), and a
comparison of shapes, not values: the keys of every object, the type of every value, the
events of a stream by name and in order.

A simulated answer matches its samples when
- every key that all the samples of its kind carry is there (what only some carry, a
  newer API version's extras say, may be missing), and no key is there that none of
  them carries;
- each value has a type some sample has there (a null matches anything: it is a value
  the request did not set, not a shape; int and float are both numbers);
- list items are compared with the samples' items of the same `type` (content blocks,
  output items), or with all of them when they have no type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tests.samples import CONTRACT


def sample(name: str) -> Any:
    text = (CONTRACT / name).read_text()  # a sample missing here is a failing test
    return json.loads(text) if name.endswith(".json") else text


def sse(text: str) -> list[tuple[str, Any]]:
    """(event name or "", parsed data or "[DONE]") of each event of an SSE text."""
    out: list[tuple[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "", None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _group(items: Iterable[Any]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for item in items:
        key = str(item["type"]) if isinstance(item, dict) and "type" in item else "*"
        groups.setdefault(key, []).append(item)
    return groups


# A request's own JSON schema, which the API echoes back: its content is the caller's.
OPAQUE = frozenset({"tools.parameters", "response.tools.parameters", "item.parameters"})


def mismatches(got: Any, samples: list[Any], where: str = "$",
               optional: frozenset[str] = frozenset()) -> list[str]:
    """How `got` departs from the shape of `samples` (empty: it matches). `optional`:
    dotted paths (without the leading "$.") the README says may be absent."""
    if got is None:
        return []
    kinds = {_type(s) for s in samples if s is not None}
    if not kinds:
        return []
    if _type(got) not in kinds:
        return [f"{where}: {_type(got)}, the samples have {sorted(kinds)}"]
    if where.removeprefix("$.").replace("[]", "") in OPAQUE:
        return []
    if isinstance(got, dict):
        objects = [s for s in samples if isinstance(s, dict)]
        required = set.intersection(*(set(s) for s in objects))
        allowed = set.union(*(set(s) for s in objects))
        out = []
        for key in sorted(required - set(got)):
            if _path(where, key) not in optional:
                out.append(f"{where}: missing {key!r}")
        for key in sorted(set(got) - allowed):
            out.append(f"{where}: {key!r} is in no sample")
        for key in sorted(set(got) & allowed):
            out += mismatches(got[key], [s[key] for s in objects if key in s],
                              f"{where}.{key}", optional)
        return out
    if isinstance(got, list):
        seen = _group(item for s in samples if isinstance(s, list) for item in s)
        out = []
        for kind, items in _group(got).items():
            like = seen.get(kind) or (seen.get("*") if kind == "*" else None)
            if like is None:
                if seen:
                    out.append(f"{where}[]: an item of type {kind!r}, which no sample has")
                continue
            for item in items:
                out += mismatches(item, like, f"{where}[]", optional)
        return out
    return []


def _path(where: str, key: str) -> str:
    return f"{where}.{key}".removeprefix("$.").replace("[]", "")


def runs(names: Iterable[str]) -> list[str]:
    """The names in order, a run of the same name once: `a b b b c` is `a b c`."""
    out: list[str] = []
    for name in names:
        if not out or out[-1] != name:
            out.append(name)
    return out
