"""Which of a profile's patterns can match a text, in one pass: every pattern of every
pattern filter of the profile (blocklist terms and patterns, each PII kind) in one RE2
Set, so that a text is read once by one automaton, and only the filters (and the parts of
a filter) whose pattern matched somewhere scan it again for where.

The screen is exact, never a guess: a filter finds something only where its pattern
matches, and the Set reports every pattern that matches anywhere. When RE2 cannot give
that answer (its automaton ran out of memory, which `RE2::Set::Match` reports only as
"no match"), a pattern that always matches at the text's end is missing from the answer
too; then every filter scans the text as if there were no screen (fail closed, never
skip a filter on a screen that did not finish).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import re2

from policies.content.normalize import compile_pattern

# Matches once, at the text's end: present in every answer of a Set that read it all.
_END = r"\z"
MAX_MEM = 64 << 20

log = logging.getLogger("policies.content")


class Screen:
    """One RE2 Set over the `sources` given, by filter: `sources[i]` are filter i's
    (pattern, ignore_case) pairs."""

    def __init__(self, sources: Sequence[Sequence[tuple[str, bool]]]) -> None:
        self._owner: list[tuple[int, int]] = []  # Set index -> (filter, its own index)
        self._set: re2.Set | None = None
        patterns = [(f, i, p, ic) for f, own in enumerate(sources) for i, (p, ic) in enumerate(own)]
        if not patterns:
            return
        options = re2.Options()
        options.log_errors = False
        # Room for a large blocklist's program once case folding has grown it (RE2's 8 MB
        # default refuses one of ~8,000 terms); the automaton's cache grows within it only
        # as texts need.
        options.max_mem = MAX_MEM
        screen = re2.Set.SearchSet(options)
        for f, i, pattern, ignore_case in patterns:
            compile_pattern(pattern, ignore_case=ignore_case)  # its error, in its own words
            screen.Add(f"(?i:{pattern})" if ignore_case else pattern)
            self._owner.append((f, i))
        self._end = screen.Add(_END)
        try:
            screen.Compile()
        except re2.error:
            # Too large even so: no screen, every filter scans every text (as before it).
            log.warning("content filters: the patterns are too many to screen in one pass; "
                        "each filter scans every text")
            return
        self._set = screen

    def hits(self, text: str) -> dict[int, frozenset[int]] | None:
        """For each filter with a pattern that matched in `text`, the indices of its own
        patterns that did; None when there is no screen or it could not answer (scan
        everything)."""
        if self._set is None:
            return None
        # The binding answers a list of indices, or None for none (its stub says bool).
        matched = cast("list[int] | None", self._set.Match(text))
        return self.read(matched or ())

    def read(self, matched: Sequence[int]) -> dict[int, frozenset[int]] | None:
        if self._end not in matched:
            return None  # the Set did not read the text to its end
        found: dict[int, set[int]] = {}
        for index in matched:
            if index != self._end:
                f, i = self._owner[index]
                found.setdefault(f, set()).add(i)
        return {f: frozenset(own) for f, own in found.items()}
