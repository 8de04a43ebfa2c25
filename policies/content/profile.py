"""One content-filter profile: its filters in order, and what their findings mean."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.content.config import FilterConfig
from policies.content.factory import build
from policies.content.filters import Filter, Finding
from policies.content.normalize import Normalized, normalize
from policies.content.screen import Screen
from policies.errors import PolicyUnavailable

log = logging.getLogger("policies.content")


@dataclass
class Outcome:
    text: str  # after redaction
    blocked: bool = False
    # Azure-shaped per-category results: {category: {"filtered": bool, "severity": str}}
    results: dict[str, dict[str, object]] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)  # "block", "redact", "annotate" taken
    findings: list[Finding] = field(default_factory=list)  # every match, in `text`'s offsets
    redactions: list[Finding] = field(default_factory=list)  # the matches to replace


def redact(text: str, findings: Sequence[Finding]) -> str:
    out, at = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        if f.start < at:
            continue  # overlaps one already replaced
        out += [text[at:f.start], f.label]
        at = f.end
    out.append(text[at:])
    return "".join(out)


class ContentProfile:
    def __init__(self, name: str, configs: Sequence[FilterConfig], services: Any = None) -> None:
        self.name = name
        self.filters: list[Filter] = [build(c, services) for c in configs]
        self._stages = frozenset(stage for f in self.filters for stage in f.stages)
        # One pass over the normalized text for every pattern filter's patterns.
        self._screened = [f.normalized and bool(f.screens()) for f in self.filters]
        self._screen = Screen([f.screens() if on else () for f, on in
                               zip(self.filters, self._screened, strict=True)])

    def applies(self, stage: str) -> bool:
        return stage in self._stages

    async def check(self, text: str, stage: str) -> Outcome:
        """Every filter of the stage scans the same original text (pattern filters its
        normalized form, their findings mapped back); redactions are applied once, at
        the end, so that every finding's offsets are those of `text`."""
        outcome = Outcome(text)
        normalized: Normalized | None = None
        hits: dict[int, frozenset[int]] | None = None
        for index, flt in enumerate(self.filters):
            if stage not in flt.stages:
                continue
            try:
                if flt.normalized:
                    if normalized is None:
                        normalized = normalize(text)
                        hits = self._screen.hits(normalized.text)
                    own: frozenset[int] | None = None  # None: scan for everything
                    if hits is not None and self._screened[index]:
                        own = hits.get(index)
                        if own is None:
                            continue  # none of its patterns matches anywhere in the text
                    findings = [Finding(f.category, *normalized.span(f.start, f.end), f.label,
                                        f.severity)
                                for f in await flt.scan(normalized.text, stage, own)]
                else:
                    findings = await flt.scan(text, stage)
            except Exception as exc:
                if flt.fail_open:
                    log.warning("content filter %s failed; failing open: %r", type(flt).__name__, exc)
                    continue
                raise PolicyUnavailable(
                    f"A content filter of profile {self.name} could not check the {stage}; "
                    "the request was not served."
                ) from exc
            if not findings:
                continue
            outcome.actions.append(flt.action)
            for finding in findings:
                outcome.results[finding.category] = {
                    "filtered": flt.action != "annotate", "severity": finding.severity}
            outcome.findings += findings
            if flt.action == "block":
                outcome.blocked = True
                return outcome
            if flt.action == "redact":
                outcome.redactions += findings
        if outcome.redactions:
            outcome.text = redact(text, outcome.redactions)
        return outcome
