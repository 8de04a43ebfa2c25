"""Personal data found in text: e-mail addresses, phone numbers, payment cards
(Luhn-checked), IBANs (mod-97 checked), US social-security numbers, IP addresses.

The patterns are RE2 (linear time, see `normalize`). RE2 has no lookaround, so
what the patterns cannot say (an SSN's forbidden areas, a phone number that must
not start inside a longer number) is checked on each match afterwards.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterator

import re2

from policies.content.normalize import compile_pattern, spans

# Kinds whose pattern consumes the characters around the match to check them (RE2's
# stand-in for lookaround): the finding is group 1, and the next search resumes at its end.
_BOUNDED = {"phone"}
# (pattern, case-insensitive). Compiled on first use (`Patterns`): compiled RE2 programs
# cost memory that a gateway without PII filters should not pay.
SOURCES = {
    "email": (r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b", True),
    "card": (r"\b(?:\d[ -]?){12,18}\d\b", True),
    "iban": (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", False),
    "ssn": (r"\b\d{3}-\d{2}-\d{4}\b", True),
    "ip": (r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}\b", True),
    # Not right after a word character or '+', and not followed by one.
    "phone": (r"(?:^|[^\w+])(\+?\d{1,3}?[ .-]?\(?\d{2,4}\)?(?:[ .-]?\d{2,4}){2,4})(?:\W|$)", True),
}
KINDS = tuple(SOURCES)


class Patterns:
    """The compiled PII patterns, compiled when first asked for."""

    def __init__(self) -> None:
        self._compiled: dict[str, re2._Regexp[str]] = {}

    def __getitem__(self, kind: str) -> re2._Regexp[str]:
        pattern = self._compiled.get(kind)
        if pattern is None:
            source, ignore_case = SOURCES[kind]
            pattern = self._compiled[kind] = compile_pattern(source, ignore_case=ignore_case)
        return pattern


PATTERNS = Patterns()
# A character each kind cannot match without. Most streamed prose has no digit and no
# "@": one scan for each clue then spares running the kind's pattern.
_DIGIT = re.compile(r"\d")
_CLUES: dict[str, re.Pattern[str]] = {
    "email": re.compile("@"), "card": _DIGIT, "iban": _DIGIT, "ssn": _DIGIT,
    "ip": re.compile(r"[\d:]"), "phone": _DIGIT,
}
LABELS = {kind: f"[{kind.upper()}]" for kind in KINDS}


def luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn(digits)


def _iban(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ssn(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" \
        and serial != "0000"


def _ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 7 <= len(digits) <= 15


CHECKS: dict[str, Callable[[str], bool]] = {
    "card": _card, "iban": _iban, "ssn": _ssn, "ip": _ip, "phone": _phone}


def _matches(kind: str, text: str) -> Iterator[tuple[int, int]]:
    pattern = PATTERNS[kind]
    if kind not in _BOUNDED:
        for whole in pattern.finditer(text):
            yield whole.span()
        return
    yield from spans(pattern, text, 1)


class _Taken:
    """Non-overlapping spans already found, sorted: an overlap test is a bisection, so
    thousands of findings in one text cost n log n, not n squared."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self.starts, start)
        return (i > 0 and self.ends[i - 1] > start) or (i < len(self.starts) and self.starts[i] < end)

    def add(self, start: int, end: int) -> None:
        i = bisect.bisect_right(self.starts, start)
        self.starts.insert(i, start)
        self.ends.insert(i, end)


def find(text: str, kinds: tuple[str, ...]) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) of each finding, earlier kinds winning overlaps."""
    taken = _Taken()
    clues: dict[re.Pattern[str], bool] = {}
    for kind in kinds:
        clue = _CLUES[kind]
        present = clues.get(clue)
        if present is None:
            present = clues[clue] = clue.search(text) is not None
        if not present:
            continue
        check = CHECKS.get(kind)
        for start, end in _matches(kind, text):
            if taken.overlaps(start, end):
                continue
            if check is not None and not check(text[start:end]):
                continue
            taken.add(start, end)
            yield kind, start, end
