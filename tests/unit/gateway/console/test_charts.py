"""The usage page's figures: periods of a range in a zone (DST included), and cells as
stacks, the nine largest apart and the rest as one, each cell in exactly one stack."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from gateway.console.charts import periods, stacked
from gateway.database.usage_rollups import Cells
from gateway.database.values import Counts


def test_days_and_months_of_a_range_in_a_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    labels, bounds = periods(datetime.date(2026, 3, 5), datetime.date(2026, 3, 20), "day", berlin)
    assert labels[0] == "2026-03-01" and labels[-1] == "2026-03-31" and len(labels) == 31
    assert len(bounds) == 32
    assert bounds[0] == datetime.datetime(2026, 2, 28, 23, tzinfo=datetime.UTC)
    # 29 March is 23 hours long in Berlin: the clocks go forward.
    assert bounds[29] - bounds[28] == datetime.timedelta(hours=23)
    labels, bounds = periods(datetime.date(2025, 11, 1), datetime.date(2026, 2, 1), "month",
                             ZoneInfo("UTC"))
    assert labels == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert bounds[-1] == datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)


def test_the_largest_stacks_apart_and_the_others_together() -> None:
    cells: Cells = {}
    for i in range(12):
        cells[(0, (f"c{i:02d}",))] = Counts(requests=1, cost_micros=(i + 1) * 1_000_000)
        cells[(1, (f"c{i:02d}",))] = Counts(requests=1, prompt_tokens=10)
    series = stacked(cells, ["d1", "d2"])
    assert series.stacks[:3] == ["c11", "c10", "c09"]
    assert series.stacks[-1] == "Other (3)" and len(series.stacks) == 10
    assert series.value(0, 9, "cost") == 1 + 2 + 3  # c00, c01 and c02 together
    assert series.grand_total("cost") == sum(range(1, 13))
    assert series.grand_total("tokens") == 120
    rows = series.rows()
    assert len(rows) == 20 and ("d2", "Other (3)", 0.0, 30.0) in rows
    # Ten: all apart (an "Other (1)" would say less than the name).
    ten = stacked({k: v for k, v in cells.items() if k[1][0] < "c10"}, ["d1", "d2"])
    assert len(ten.stacks) == 10 and not any(s.startswith("Other") for s in ten.stacks)
    assert stacked({}, []).rows() == []
