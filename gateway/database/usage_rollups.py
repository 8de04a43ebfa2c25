"""Usage reports at an organisation's size: the ledger's counts summed per period and per
consumer and/or deployment, in the database (GROUP BY), never row by row in Python.

A period is any span of time (a day or a month in the quotas' zone, say). Its whole UTC
days are read from the day rollup (`usage_days`); only the hours at its edges that are
not a whole UTC day are read from the hourly rows. In UTC every day or month is whole
days, and the hourly rows are not read at all; in another zone a month reads two edges
of a few hours, and a day (which straddles two UTC days) reads its 24 hours."""

from __future__ import annotations

import bisect
import datetime
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Column, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.database.schema import usage, usage_days
from gateway.database.values import COUNTS, Counts

Dimension = Literal["consumer", "deployment"]
Cells = dict[tuple[int, tuple[str, ...]], Counts]  # (period index, group values) -> counts

UTC = datetime.UTC


@dataclass(frozen=True, slots=True)
class Plan:
    """What to read for each period: whole UTC days [from, to) and hours [from, to)."""

    days: tuple[tuple[int, datetime.date, datetime.date], ...]
    hours: tuple[tuple[int, datetime.datetime, datetime.datetime], ...]


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day, tzinfo=UTC)


def plan(bounds: Sequence[datetime.datetime]) -> Plan:
    """Period i is [bounds[i], bounds[i+1]); empty periods read nothing."""
    days: list[tuple[int, datetime.date, datetime.date]] = []
    hours: list[tuple[int, datetime.datetime, datetime.datetime]] = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        a, b = a.astimezone(UTC), b.astimezone(UTC)
        if a >= b:
            continue
        first = a.date() if _midnight(a.date()) == a else a.date() + datetime.timedelta(days=1)
        last = b.date()  # the first day not wholly inside
        if first < last:
            days.append((i, first, last))
            if a < _midnight(first):
                hours.append((i, a, _midnight(first)))
            if _midnight(last) < b:
                hours.append((i, _midnight(last), b))
        else:
            hours.append((i, a, b))
    return Plan(tuple(days), tuple(hours))


def _sums(table: Any) -> list[Any]:
    return [func.sum(table.c[name]).label(name) for name in COUNTS]


def _counts(row: Any) -> Counts:
    return Counts(**{name: int(getattr(row, name) or 0) for name in COUNTS})


def _filters(table: Any, consumer: str | None, deployment: str | None) -> list[Any]:
    out = []
    if consumer is not None:
        out.append(table.c.consumer == consumer)
    if deployment is not None:
        out.append(table.c.deployment == deployment)
    return out


def _merged(spans: Sequence[tuple[datetime.datetime, datetime.datetime]]
            ) -> list[tuple[datetime.datetime, datetime.datetime]]:
    """Adjacent hour spans as one (a month's end and the next one's start, say)."""
    out: list[tuple[datetime.datetime, datetime.datetime]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class UsageRollups:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def series(self, bounds: Sequence[datetime.datetime], by: Sequence[Dimension],
                     consumer: str | None = None, deployment: str | None = None) -> Cells:
        """Counts per period (bounds as in `plan`) and per value of the `by` columns,
        optionally for one consumer and/or deployment. At most two queries."""
        p = plan(bounds)
        cells: Cells = {}
        async with self._engine.connect() as c:
            if p.days:
                await self._days(c, p, by, consumer, deployment, cells)
            if p.hours:
                await self._hours(c, p, by, consumer, deployment, cells)
        return cells

    async def _days(self, c: Any, p: Plan, by: Sequence[Dimension], consumer: str | None,
                    deployment: str | None, cells: Cells) -> None:
        groups: list[Column[Any]] = [usage_days.c[d] for d in by]
        query = (select(usage_days.c.day, *groups, *_sums(usage_days))
                 .where(usage_days.c.day >= p.days[0][1], usage_days.c.day < p.days[-1][2],
                        *_filters(usage_days, consumer, deployment))
                 .group_by(usage_days.c.day, *groups))
        starts = [start for _, start, _ in p.days]
        for row in (await c.execute(query)).all():
            day = row.day if isinstance(row.day, datetime.date) else datetime.date.fromisoformat(row.day)
            at = bisect.bisect_right(starts, day) - 1
            if at < 0 or day >= p.days[at][2]:
                continue  # a day that straddles two periods: its hours are read instead
            _add(cells, p.days[at][0], tuple(getattr(row, d) for d in by), _counts(row))

    async def _hours(self, c: Any, p: Plan, by: Sequence[Dimension], consumer: str | None,
                     deployment: str | None, cells: Cells) -> None:
        groups: list[Column[Any]] = [usage.c[d] for d in by]
        spans = _merged([(a, b) for _, a, b in p.hours])
        query = (select(usage.c.hour, *groups, *_sums(usage))
                 .where(or_(*(and_(usage.c.hour >= a, usage.c.hour < b) for a, b in spans)),
                        *_filters(usage, consumer, deployment))
                 .group_by(usage.c.hour, *groups))
        ordered = sorted(p.hours, key=lambda s: s[1])
        starts = [a for _, a, _ in ordered]
        for row in (await c.execute(query)).all():
            hour = row.hour if row.hour.tzinfo else row.hour.replace(tzinfo=UTC)
            at = bisect.bisect_right(starts, hour) - 1
            if at < 0 or hour >= ordered[at][2]:
                continue
            _add(cells, ordered[at][0], tuple(getattr(row, d) for d in by), _counts(row))


def _add(cells: Cells, period: int, group: tuple[str, ...], counts: Counts) -> None:
    found = cells.get((period, group))
    if found is None:
        cells[(period, group)] = counts
    else:
        found.add(counts)


def local_midnight(day: datetime.date, zone: datetime.tzinfo) -> datetime.datetime:
    """The start of `day` in `zone`, in UTC."""
    return datetime.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def next_month(day: datetime.date) -> datetime.date:
    return (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
