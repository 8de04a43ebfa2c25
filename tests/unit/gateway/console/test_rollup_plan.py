"""What a report reads for each period: the whole UTC days from the day rollup, the rest
from the hourly rows; in UTC nothing hourly at all."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from gateway.console.charts import periods
from gateway.database.usage_rollups import plan

UTC = datetime.UTC


def test_utc_periods_are_whole_days() -> None:
    _, bounds = periods(datetime.date(2026, 1, 1), datetime.date(2026, 12, 1), "month", ZoneInfo("UTC"))
    p = plan(bounds)
    assert len(p.days) == 12 and p.hours == ()
    assert p.days[1] == (1, datetime.date(2026, 2, 1), datetime.date(2026, 3, 1))


def test_a_month_elsewhere_reads_only_its_edges_by_the_hour() -> None:
    _, bounds = periods(datetime.date(2026, 3, 1), datetime.date(2026, 3, 1), "month",
                        ZoneInfo("Europe/Berlin"))
    p = plan(bounds)
    assert p.days == ((0, datetime.date(2026, 3, 1), datetime.date(2026, 3, 31)),)
    assert p.hours == (
        (0, datetime.datetime(2026, 2, 28, 23, tzinfo=UTC), datetime.datetime(2026, 3, 1, tzinfo=UTC)),
        (0, datetime.datetime(2026, 3, 31, tzinfo=UTC), datetime.datetime(2026, 3, 31, 22, tzinfo=UTC)))


def test_a_day_elsewhere_is_hours_and_empty_periods_read_nothing() -> None:
    _, bounds = periods(datetime.date(2026, 1, 1), datetime.date(2026, 1, 1), "day",
                        ZoneInfo("America/New_York"))
    p = plan(bounds)
    assert p.days == () and len(p.hours) == 31
    same = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    assert plan([same, same]) == plan([])
    assert plan([same, same + datetime.timedelta(hours=5)]).hours == (
        (0, same, same + datetime.timedelta(hours=5)),)
