"""The JSON shape check on raw bytes agrees with the parsed value, whatever the
strings hold (brackets, commas, quotes and backslashes, escaped or not)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.errors import InvalidRequest
from gateway.http.inbound import check_shape

TRICKY = st.text(alphabet='ab[]{},"\\:\n é', max_size=8)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
    max_leaves=40,
)


def depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max([level, *(depth(v, level + 1) for v in value.values())])
    if isinstance(value, list):
        return max([level, *(depth(v, level + 1) for v in value)])
    return level - 1


def values(value: Any) -> int:
    """What the check counts: per container, its separators and itself."""
    if isinstance(value, (dict, list)):
        items = list(value.values()) if isinstance(value, dict) else value
        return 1 + max(0, len(items) - 1) + sum(values(v) for v in items)
    return 0


def accepted(raw: bytes, max_depth: int, max_items: int) -> bool:
    try:
        check_shape(raw, max_depth, max_items)
    except InvalidRequest:
        return False
    return True


# What pads a body past the small bodies' shortcut: none; prose (a long string with an
# escaped quote every few bytes); a list of short strings (quotes and commas dense).
PADS: dict[str, Any] = {"none": None, "prose": 'a\\"b' * 2250, "strings": ["ab"] * 2250}


@settings(max_examples=400, deadline=None)
@given(VALUES, st.sampled_from([(",", ":"), (", ", ": ")]), st.sampled_from(sorted(PADS)))
def test_the_check_agrees_with_the_parsed_value(value: Any, separators: tuple[str, str],
                                                pad: str) -> None:
    # Each way of counting (the shortcut, the bounds, the exact walk) is held to the parse.
    body = {"m": value} if PADS[pad] is None else {"m": value, "pad": PADS[pad]}
    raw = json.dumps(body, separators=separators, ensure_ascii=False).encode()
    d, n = depth(body), values(body) + 1
    assert accepted(raw, d, n)
    assert d >= 1  # the body itself is an object
    assert not accepted(raw, d - 1, n)
    assert not accepted(raw, 1000, n - 1)


@pytest.mark.parametrize("raw", [b'{"a":' + b"[" * 65 + b"]" * 65 + b"}",
                                 b'{"a":' + b'{"k":' * 65 + b"1" + b"}" * 66])
def test_deep_bodies_are_refused(raw: bytes) -> None:
    assert not accepted(raw, 64, 100_000)
    assert accepted(raw, 70, 100_000)
