"""Migration 0005 (media units and APIs in the ledger) against real databases: rows of the
previous schema are kept, with no units and empty APIs, and a row per API can then be
written beside them; going back sums the rows of one old key."""

from __future__ import annotations

import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import DatabaseConfig
from gateway.database.engine import make_engine
from gateway.database.migrate import HEAD, upgrade
from gateway.database.usage import UsageLedger
from gateway.database.values import Counts

HOUR = datetime.datetime(2026, 12, 2, 10, tzinfo=datetime.UTC)
OLD = "requests, errors, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, cost_micros"


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    from gateway.database.migrate import _config

    async with engine.begin() as c:
        await c.run_sync(lambda sync: command.downgrade(_config(sync), revision))


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request: pytest.FixtureRequest, database: str) -> DatabaseConfig:
    if request.param == "sqlite":
        return DatabaseConfig(url=database)
    return DatabaseConfig(url=request.getfixturevalue("postgres"), password_env="PG_TEST_PASSWORD")


async def test_rows_of_the_previous_schema_are_kept_and_rows_per_api_join_them(
        config: DatabaseConfig) -> None:
    engine = make_engine(config)
    try:
        assert await upgrade(engine, "0003") == "0003"
        figures = dict(zip(OLD.split(", "), (3, 1, 30, 0, 12, 0, 900), strict=True))
        old = sa.table("usage", *(sa.column(n) for n in ("consumer", "deployment", *figures)),
                       sa.column("hour", sa.DateTime(timezone=True)))
        old_days = sa.table("usage_days", *(sa.column(n) for n in ("consumer", "deployment",
                                                                     *figures)),
                            sa.column("day", sa.Date()))
        async with engine.begin() as c:  # as the previous gateway wrote them
            await c.execute(sa.insert(old).values(consumer="team-a", deployment="chat", hour=HOUR,
                                                  **figures))
            await c.execute(sa.insert(old_days).values(consumer="team-a", deployment="chat",
                                                       day=HOUR.date(), **figures))
        assert await upgrade(engine) == HEAD
        ledger = UsageLedger(engine)
        rows = {("team-a", "chat", HOUR, "audio.transcriptions", "audio/transcriptions"):
                Counts(requests=1, audio_seconds=7, cost_micros=42_000)}
        assert await ledger.write("batch-1", rows)
        async with engine.connect() as c:
            hourly = (await c.execute(text(
                "SELECT api, backend_api, requests, prompt_tokens, audio_seconds, images, "
                "characters, cost_micros FROM usage ORDER BY api"))).all()
            daily = (await c.execute(text(
                "SELECT api, requests, audio_seconds FROM usage_days ORDER BY api"))).all()
        assert [tuple(r) for r in hourly] == [
            ("", "", 3, 30, 0, 0, 0, 900),
            ("audio.transcriptions", "audio/transcriptions", 1, 0, 7, 0, 0, 42_000)]
        assert [tuple(r) for r in daily] == [("", 3, 0), ("audio.transcriptions", 1, 7)]
        found = await ledger.rows(HOUR, HOUR + datetime.timedelta(hours=1))
        assert sorted((n.requests, n.audio_seconds) for _, _, _, n in found) == [(1, 7), (3, 0)]

        await downgrade(engine, "0003")  # back: one row per old key, summed
        async with engine.connect() as c:
            back = (await c.execute(text("SELECT requests, prompt_tokens, cost_micros FROM usage"))).all()
            days = (await c.execute(text("SELECT requests FROM usage_days"))).all()
        assert [tuple(r) for r in back] == [(4, 30, 42_900)]
        assert [tuple(r) for r in days] == [(4,)]
    finally:
        await engine.dispose()
