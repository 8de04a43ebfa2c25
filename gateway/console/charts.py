"""The usage page's figures: the periods of a range (days or months in the quotas' zone),
and the rollups' cells as stacked series, the nine largest apart and the rest together,
so that a chart stays readable with hundreds of consumers. The chart, the table under
it and the CSV are the same cells."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from gateway.database.usage_rollups import Cells, local_midnight, next_month
from gateway.database.values import Counts
from policies.ratelimit.quotas import MICROS

TOP = 9


def periods(first: datetime.date, last: datetime.date, by: str, zone: datetime.tzinfo
            ) -> tuple[list[str], list[datetime.datetime]]:
    """The labels of the periods from the month of `first` to the month of `last`, and
    their bounds (one more than labels), in UTC."""
    labels: list[str] = []
    starts: list[datetime.date] = []
    day = first.replace(day=1)
    end = next_month(last)
    while day < end:
        starts.append(day)
        if by == "month":
            labels.append(day.strftime("%Y-%m"))
            day = next_month(day)
        else:
            labels.append(day.isoformat())
            day += datetime.timedelta(days=1)
    starts.append(end)
    return labels, [local_midnight(d, zone) for d in starts]


def cost(counts: Counts) -> float:
    return counts.cost_micros / MICROS


def tokens(counts: Counts) -> float:
    return float(counts.prompt_tokens + counts.completion_tokens)


@dataclass(frozen=True, slots=True)
class Series:
    """Periods x stacks of one dimension, with both measures the page shows."""

    periods: list[str]
    stacks: list[str]  # the largest, then "Other (n)" when there are more
    cells: dict[tuple[int, int], Counts]  # (period index, stack index) -> counts

    def value(self, period: int, stack: int, measure: str) -> float:
        counts = self.cells.get((period, stack))
        if counts is None:
            return 0.0
        return cost(counts) if measure == "cost" else tokens(counts)

    def total(self, period: int, measure: str) -> float:
        return sum(self.value(period, s, measure) for s in range(len(self.stacks)))

    def grand_total(self, measure: str) -> float:
        return sum(self.total(p, measure) for p in range(len(self.periods)))

    def stack_total(self, stack: int, measure: str) -> float:
        return sum(self.value(p, stack, measure) for p in range(len(self.periods)))

    def rows(self) -> list[tuple[str, str, float, float]]:
        """(period, stack, cost, tokens) for every cell with something in it: the CSV."""
        out = []
        for p, label in enumerate(self.periods):
            for s, stack in enumerate(self.stacks):
                if (p, s) in self.cells:
                    out.append((label, stack, self.value(p, s, "cost"), self.value(p, s, "tokens")))
        return out


def stacked(cells: Cells, labels: list[str], top: int = TOP) -> Series:
    """The rollups' cells (keyed by one dimension) as stacks: the `top` largest by cost
    (then tokens, then name), and the others summed as one."""
    totals: dict[str, Counts] = {}
    for (_, (name,)), counts in cells.items():
        totals.setdefault(name, Counts()).add(counts)
    ranked = sorted(totals, key=lambda n: (-cost(totals[n]), -tokens(totals[n]), n))
    kept = ranked[:top] if len(ranked) > top + 1 else ranked
    rest = len(ranked) - len(kept)
    stacks = [*kept, f"Other ({rest})"] if rest else list(kept)
    index = {name: i for i, name in enumerate(kept)}
    out: dict[tuple[int, int], Counts] = {}
    for (period, (name,)), counts in cells.items():
        at = (period, index.get(name, len(kept)))
        out.setdefault(at, Counts()).add(counts)
    return Series(labels, stacks, out)
