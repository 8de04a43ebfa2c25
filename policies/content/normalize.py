"""Text as the pattern filters see it, so that writing a term differently does not
get it past them: Unicode compatibility forms folded (NFKC: fullwidth letters,
ligatures, superscripts), and invisible format characters (zero-width spaces and
joiners, soft hyphens, the BOM) removed. Case and runs of whitespace are the
patterns' own business (see `filters`).

Findings are made in the normalized text; `Normalized.span` maps them back, so
that a redaction replaces exactly the original characters.

Also the one place that compiles patterns: RE2 (google-re2), which runs in time
linear in the text for every pattern, configured ones included; it has no
backtracking, so no pattern can stall the event loop.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import re2

# Characters that render as nothing and are used to split a word past a filter.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def compile_pattern(pattern: str, *, ignore_case: bool = True) -> re2._Regexp[str]:
    """An RE2 pattern; `re2.error` (a ValueError) names what RE2 does not accept."""
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # RE2 would print its parse errors to stderr itself
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) \
            else str(exc)
        raise ValueError(f"pattern {pattern!r} is not valid RE2: {reason}") from None


def spans(pattern: re2._Regexp[str], text: str, group: int = 0) -> Iterator[tuple[int, int]]:
    """The (start, end) of `group` in each match, resuming after the group rather than
    after the whole match (a pattern that consumes the characters around what it
    finds, RE2's stand-in for lookaround, can then find neighbours that share one).

    The text is encoded once and searched as bytes: the binding's own `search(text,
    pos)` encodes the whole text on every call, which would make this quadratic.
    Byte offsets are turned into character offsets walking forward only."""
    data = text.encode()
    ascii_text = len(data) == len(text)
    at = 0
    byte_mark = char_mark = 0  # a byte offset and the character offset it is at

    def chars(offset: int) -> int:
        nonlocal byte_mark, char_mark
        char_mark += len(data[byte_mark:offset].decode())
        byte_mark = offset
        return char_mark

    while (match := pattern.search(data, at)) is not None:
        start, end = match.span(group)
        at = end if end > start else end + 1
        yield (start, end) if ascii_text else (chars(start), chars(end))
        if at > len(data):
            return


@dataclass(frozen=True, slots=True)
class Normalized:
    text: str
    # For each normalized character, the original range it came from; None: the same text.
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        if self.starts is None or self.ends is None or end <= start:
            return start, end
        return self.starts[start], self.ends[end - 1]


def normalize(text: str) -> Normalized:
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and not _INVISIBLE.search(text)):
        return Normalized(text)
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        # A character with its combining marks: NFKC composes within such a run.
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        piece = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text[i:j]))
        parts.append(piece)
        starts += [i] * len(piece)
        ends += [j] * len(piece)
        i = j
    return Normalized("".join(parts), tuple(starts), tuple(ends))
