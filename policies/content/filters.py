"""The built-in filters and the custom-hook filter. Each scans a text for one stage
and returns findings; the profile decides what each finding means (block, redact,
annotate)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

from policies.content import pii
from policies.content.config import BlocklistConfig, FilterConfig, HookConfig, PiiConfig
from policies.content.normalize import compile_pattern, normalize, spans


@dataclass(frozen=True, slots=True)
class Finding:
    category: str  # the key in Azure-shaped results: "custom_blocklist", "pii_email", ...
    start: int
    end: int
    label: str  # what a redaction writes instead, e.g. "[EMAIL]"
    severity: str = "high"


@dataclass(frozen=True)
class Verdict:
    """What a custom hook returns (or just True / False). `spans` limits a redaction;
    without spans a hit covers the whole text."""

    hit: bool
    category: str = "custom"
    spans: tuple[tuple[int, int], ...] = ()


class Filter:
    # Scans the normalized text (see `normalize`): pattern filters do, so that width,
    # compatibility forms and invisible characters cannot hide a match.
    normalized = False

    def __init__(self, config: FilterConfig) -> None:
        self.config = config
        self.action = config.action
        self.stages = config.stages
        self.fail_open = config.on_error == "open"

    def screens(self) -> tuple[tuple[str, bool], ...]:
        """RE2 patterns, (source, ignore_case), of which one matches somewhere in any text
        this filter finds something in: the profile's one-pass screen
        (`policies.content.screen`) reads every text first, and a filter none of whose
        patterns matched is not run. None here: every text is scanned."""
        return ()

    async def scan(self, text: str, stage: str,
                   hits: frozenset[int] | None = None) -> list[Finding]:
        """The findings in `text`. `hits`: the indices of `screens()` that matched in it
        (None: not screened, scan for everything)."""
        raise NotImplementedError


# Word characters, as the boundary around a blocklist term sees them.
_WORD = r"\p{L}\p{N}_"


def terms_pattern(terms: list[str]) -> str:
    """One RE2 alternation of all terms, longest first, each matched as whole words, with
    any run of whitespace (spaces, newlines, NBSP, other Unicode spaces) between words.
    The boundaries are consumed (RE2 has no lookaround): `Blocklist.scan` resumes after
    each term, so adjacent terms sharing a space are all found."""
    alternatives = []
    for term in sorted({normalize(t).text.strip() for t in terms if t.strip()}, key=len, reverse=True):
        words = term.split()
        alternatives.append(r"[\s\p{Z}]+".join(re2.escape(w) for w in words))
    return rf"(?:^|[^{_WORD}])({'|'.join(alternatives)})(?:[^{_WORD}]|$)"


class Blocklist(Filter):
    normalized = True

    def __init__(self, config: BlocklistConfig) -> None:
        super().__init__(config)
        terms = list(config.terms)
        for path in config.files:
            for line in path.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    terms.append(line)
        # RE2 compiles the alternation into one automaton: a thousand terms cost one
        # linear pass over the text, not a thousand.
        sources = []
        if any(t.strip() for t in terms):
            sources.append(terms_pattern(terms))
        if config.patterns:
            sources.append("|".join(f"(?:{p})" for p in config.patterns))
        self._sources = tuple(sources)
        self._terms = compile_pattern(sources[0]) if any(t.strip() for t in terms) else None
        self._patterns = compile_pattern(sources[-1]) if config.patterns else None
        self._category = config.name

    def screens(self) -> tuple[tuple[str, bool], ...]:
        return tuple((source, True) for source in self._sources)

    async def scan(self, text: str, stage: str,
                   hits: frozenset[int] | None = None) -> list[Finding]:
        found: list[Finding] = []
        if self._terms is not None and (hits is None or 0 in hits):
            found += [Finding(self._category, start, end, "[BLOCKED]")
                      for start, end in spans(self._terms, text, 1)]
        patterns_index = len(self._sources) - 1
        if self._patterns is not None and (hits is None or patterns_index in hits):
            found += [Finding(self._category, m.start(), m.end(), "[BLOCKED]")
                      for m in self._patterns.finditer(text) if m.end() > m.start()]
        return found


class Pii(Filter):
    normalized = True

    def __init__(self, config: PiiConfig) -> None:
        super().__init__(config)
        self._kinds = tuple(config.kinds)

    def screens(self) -> tuple[tuple[str, bool], ...]:
        return tuple(pii.screen(kind) for kind in self._kinds)

    async def scan(self, text: str, stage: str,
                   hits: frozenset[int] | None = None) -> list[Finding]:
        kinds = self._kinds if hits is None else tuple(
            kind for i, kind in enumerate(self._kinds) if i in hits)
        return [Finding(f"pii_{kind}", start, end, pii.LABELS[kind])
                for kind, start, end in pii.find(text, kinds)]


def load_callable(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{path} is not callable")
    return target  # type: ignore[no-any-return]


class Hook(Filter):
    """A user's function: `check(text: str, stage: str) -> bool | Verdict`, sync or async."""

    def __init__(self, config: HookConfig) -> None:
        super().__init__(config)
        self._fn = load_callable(config.callable)
        self._timeout = config.timeout_seconds
        self._name = config.callable.rsplit(":", 1)[1]

    async def scan(self, text: str, stage: str,
                   hits: frozenset[int] | None = None) -> list[Finding]:
        async with asyncio.timeout(self._timeout):
            result = self._fn(text, stage)
            if inspect.isawaitable(result):
                result = await result
        if isinstance(result, Verdict):
            if not result.hit:
                return []
            spans = result.spans or ((0, len(text)),)
            return [Finding(result.category, s, e, "[REDACTED]") for s, e in spans]
        return [Finding(self._name, 0, len(text), "[REDACTED]")] if result else []
