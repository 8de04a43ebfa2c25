"""Personal data found in text: e-mail addresses, phone numbers, payment cards
(Luhn-checked), IBANs (mod-97 checked), US social-security numbers, IP addresses.

The patterns are RE2 (linear time, see `normalize`). RE2 has no lookaround, so
what the patterns cannot say (an SSN's forbidden areas, a phone number that must
not start inside a longer number) is checked on each match afterwards.
"""

from __future__ import annotations

import bisect
import heapq
import ipaddress
import re
from collections.abc import Callable, Iterator

import re2

from policies.content.normalize import compile_pattern, spans

# Kinds whose pattern consumes the characters around the match to check them (RE2's
# stand-in for lookaround): the finding is group 1, and the next search resumes at its end.
_BOUNDED = {"phone", "ip6"}
# (pattern, case-insensitive). Compiled on first use (`Patterns`): compiled RE2 programs
# cost memory that a gateway without PII filters should not pay.
SOURCES = {
    "email": (r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b", True),
    "card": (r"\b(?:\d[ -]?){12,18}\d\b", True),
    "iban": (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", False),
    "ssn": (r"\b\d{3}-\d{2}-\d{4}\b", True),
    "ip": (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", True),
    # IPv6, full or compressed (`::`), maybe with an IPv4 tail: not right after a word
    # character, ':' or '.', and not followed by one (a '.' that ends a sentence may).
    # Part of "ip" (`_matches`), checked by `_ip6`.
    "ip6": (r"(?:^|[^\w:.])((?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}"
            r"(?:\d{1,3}(?:\.\d{1,3}){3})?)(?:[^\w:.]|\.\D|\.$|$)", True),
    # Not right after a word character or '+', and not followed by one.
    "phone": (r"(?:^|[^\w+])(\+?\d{1,3}?[ .-]?\(?\d{2,4}\)?(?:[ .-]?\d{2,4}){2,4})(?:\W|$)", True),
}
KINDS = ("email", "card", "iban", "ssn", "ip", "phone")


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


def _ip6(text: str) -> bool:
    """A valid IPv6 address; a compressed one (`::`) also needs a group of three or four
    digits, or to be the loopback `::1`: `a::b`, `1::2` (a slice) or `::` alone are more
    often code than an address."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if address.version != 6:
        return False
    if "::" not in text:
        return True
    return text == "::1" or any(len(group) >= 3 for group in re.split(r"[:.]", text))


def _phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 7 <= len(digits) <= 15


CHECKS: dict[str, Callable[[str], bool]] = {
    "card": _card, "iban": _iban, "ssn": _ssn, "phone": _phone}  # "ip": in `_matches`


def _matches(kind: str, text: str) -> Iterator[tuple[int, int]]:
    if kind == "ip":  # IPv4 and IPv6, in the order they appear
        for start, end, _ in heapq.merge(
                ((s, e, "ip") for s, e in _kind_matches("ip", text) if _ip(text[s:e])),
                ((s, e, "ip6") for s, e in _kind_matches("ip6", text) if _ip6(text[s:e]))):
            yield start, end
        return
    yield from _kind_matches(kind, text)


def _kind_matches(kind: str, text: str) -> Iterator[tuple[int, int]]:
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


def screen(kind: str) -> tuple[str, bool]:
    """The pattern that matches somewhere in every text in which `kind` is found (IPv4 or
    IPv6 for "ip"): the content profile's one-pass screen."""
    if kind == "ip":
        return f"(?:{SOURCES['ip'][0]})|(?:{SOURCES['ip6'][0]})", True
    return SOURCES[kind]


def find(text: str, kinds: tuple[str, ...]) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) of each finding, earlier kinds winning overlaps."""
    taken = _Taken()
    for kind in kinds:
        check = CHECKS.get(kind)
        for start, end in _matches(kind, text):
            if taken.overlaps(start, end):
                continue
            if check is not None and not check(text[start:end]):
                continue
            taken.add(start, end)
            yield kind, start, end
