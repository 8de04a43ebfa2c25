"""The usage rollups the console reads, on real databases (a file SQLite and a PostgreSQL
server of the test's own): the ledger's batch writes keep the day rows in the same
transaction as the hourly ones (a batch sent twice counts once in both); migration 0003
fills the day rows from the hourly rows already there; and the reports summed from the
rollups equal the hourly rows summed in Python (the admin API's own `group`), in UTC and
in a zone whose days straddle two UTC days, across a DST change."""

from __future__ import annotations

import datetime
import random
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, inspect, select, text

from gateway.config import DatabaseConfig
from gateway.console.charts import periods
from gateway.database.engine import Database, make_engine
from gateway.database.migrate import prepare, upgrade
from gateway.database.schema import usage_days
from gateway.database.usage import group
from gateway.database.usage_rollups import local_midnight
from gateway.database.values import Counts

UTC = datetime.UTC
START = datetime.datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request: pytest.FixtureRequest, database: str) -> DatabaseConfig:
    if request.param == "sqlite":
        return DatabaseConfig(url=database)
    return DatabaseConfig(url=request.getfixturevalue("postgres"), password_env="PG_TEST_PASSWORD")


def _rows(seed: int, hours: int) -> dict[tuple[str, str, datetime.datetime], Counts]:
    rng = random.Random(seed)
    out = {}
    for h in range(0, hours, 3):
        for consumer in ("team-a", "team-b", "team-c"):
            for deployment in ("chat", "embed"):
                if rng.random() < 0.6:
                    out[(consumer, deployment, START + datetime.timedelta(hours=h))] = Counts(
                        requests=rng.randint(1, 9), prompt_tokens=rng.randint(1, 999),
                        completion_tokens=rng.randint(0, 99), cost_micros=rng.randint(0, 5000))
    return out


async def test_batches_keep_the_day_rows_in_step(config: DatabaseConfig) -> None:
    engine = make_engine(config)
    await prepare(engine, migrate=True)
    db = Database(engine)
    try:
        rows = _rows(1, 24 * 40)
        assert await db.usage.write("batch-1", rows)
        assert not await db.usage.write("batch-1", rows)  # sent again: counted once
        assert await db.usage.write("batch-2", {k: v for k, v in list(rows.items())[:5]})
        async with engine.connect() as c:
            day_sum = (await c.execute(select(func.sum(usage_days.c.prompt_tokens)))).scalar()
            hour_sum = (await c.execute(text("SELECT SUM(prompt_tokens) FROM usage"))).scalar()
        assert int(day_sum) == int(hour_sum) > 0
        for zone_name in ("UTC", "Europe/Berlin", "America/New_York"):
            zone = ZoneInfo(zone_name)
            hourly = await db.usage.rows(START - datetime.timedelta(days=2),
                                         START + datetime.timedelta(days=60))
            for by in ("day", "month"):
                labels, bounds = periods(START.date(), datetime.date(2026, 4, 1), by, zone)
                for stack in ("consumer", "deployment"):
                    cells = await db.rollups.series(bounds, (stack,))
                    expected: dict[tuple[str, str], int] = {}
                    inside = [r for r in hourly if bounds[0] <= r[2] < bounds[-1]]
                    for r in group(inside, by, zone):
                        key = (r["period"], r[stack])
                        expected[key] = expected.get(key, 0) + r["prompt_tokens"] + r["cost_micros"]
                    got = {(labels[p], g[0]): c.prompt_tokens + c.cost_micros
                           for (p, g), c in cells.items()}
                    assert got == expected, (zone_name, by, stack)
            one = await db.rollups.series(bounds, ("deployment",), consumer="team-a",
                                          deployment="chat")
            assert {g for _, g in one} == {("chat",)}
    finally:
        await engine.dispose()


async def test_migration_fills_the_day_rows_from_the_hourly_ones(config: DatabaseConfig) -> None:
    engine = make_engine(config)
    try:
        assert await upgrade(engine, "0002") == "0002"
        rows = _rows(2, 24 * 10)
        async with engine.begin() as c:
            for (consumer, deployment, hour), n in rows.items():
                await c.execute(text(
                    "INSERT INTO usage (consumer, deployment, hour, requests, errors, prompt_tokens, "
                    "cached_tokens, completion_tokens, reasoning_tokens, cost_micros) VALUES "
                    "(:c, :d, :h, :r, 0, :p, 0, :o, 0, :m)"),
                    {"c": consumer, "d": deployment, "h": hour, "r": n.requests, "p": n.prompt_tokens,
                     "o": n.completion_tokens, "m": n.cost_micros})
        await prepare(engine, migrate=True)
        db = Database(engine)
        zone = ZoneInfo("UTC")
        bounds = [local_midnight(START.date() + datetime.timedelta(days=d), zone) for d in range(11)]
        cells = await db.rollups.series(bounds, ("consumer",))
        per_day: dict[tuple[int, str], int] = {}
        for (consumer, _, hour), n in rows.items():
            key = ((hour - START).days, consumer)
            per_day[key] = per_day.get(key, 0) + n.requests
        assert {(p, g[0]): c.requests for (p, g), c in cells.items()} == per_day
        async with engine.connect() as c:
            indexes = await c.run_sync(lambda s: {i["name"] for i in inspect(s).get_indexes("usage")})
        assert {"ix_usage_hour", "ix_usage_deployment_hour"} <= indexes
    finally:
        await engine.dispose()
