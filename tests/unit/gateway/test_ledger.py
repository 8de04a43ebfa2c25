"""The usage ledger against a real SQLite database: batches summed per hour, a failed
write sent again exactly as it was, a batch sent twice counted once, and a stopped
process's spool recovered by another (its marked batches and its unmarked entries),
with a line cut short by the crash ignored."""

from __future__ import annotations

import datetime
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.config import DatabaseConfig
from gateway.core.flow import Flow
from gateway.database.engine import Database, make_engine
from gateway.database.migrate import prepare
from gateway.team.ledger import Ledger
from policies import Usage

HOUR = 1_764_640_800  # 2025-12-02T02:00:00Z


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path}/ledger.db"))
    await prepare(engine, migrate=True)
    database = Database(engine)
    yield database
    await database.close()


def exchange(prompt: int, completion: int, status: int = 200, consumer: str = "team-a",
             cost: int = 0) -> Flow:
    ex = Flow("req", "/v1/chat/completions", 0.0)
    ex.consumer, ex.deployment, ex.api_name, ex.status = consumer, "chat", "chat", status
    ex.usage, ex.cost_micros = Usage(prompt, completion), cost
    return ex


async def totals(db: Database) -> dict[tuple[str, datetime.datetime], tuple[int, ...]]:
    start = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    end = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
    return {(c, h): (n.requests, n.errors, n.prompt_tokens, n.completion_tokens, n.cost_micros)
            for c, _, h, n in await db.usage.rows(start, end)}


def at(hour: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(hour, datetime.UTC)


async def test_entries_are_summed_per_consumer_and_hour(db: Database, tmp_path: Path) -> None:
    now = [HOUR + 10.0]
    ledger = Ledger(db.usage, tmp_path / "spool", lambda: now[0])
    ledger.record(exchange(10, 5, cost=7))
    ledger.record(exchange(3, 0, status=429))
    ledger.record(exchange(1, 1, consumer="team-b"))
    now[0] = HOUR + 3600 + 1  # the next hour
    ledger.record(exchange(2, 2))
    await ledger.flush()
    await ledger.flush()  # nothing new: nothing written
    assert ledger.written == 1
    assert await totals(db) == {("team-a", at(HOUR)): (2, 1, 13, 5, 7),
                                ("team-b", at(HOUR)): (1, 0, 1, 1, 0),
                                ("team-a", at(HOUR + 3600)): (1, 0, 2, 2, 0)}
    ledger.close()


async def test_a_failed_write_is_sent_again_as_it_was(db: Database, tmp_path: Path) -> None:
    ledger = Ledger(db.usage, tmp_path / "spool", lambda: HOUR)
    ledger.record(exchange(10, 5))
    async with db.engine.begin() as c:  # the database refuses the write
        await c.execute(text("ALTER TABLE usage RENAME TO usage_away"))
    with pytest.raises(Exception, match="usage"):
        await ledger.flush()
    ledger.record(exchange(1, 1))  # arrives meanwhile: goes in the next batch
    async with db.engine.begin() as c:
        await c.execute(text("ALTER TABLE usage_away RENAME TO usage"))
    await ledger.flush()  # the failed batch, unchanged
    assert await totals(db) == {("team-a", at(HOUR)): (1, 0, 10, 5, 0)}
    await ledger.flush()
    assert await totals(db) == {("team-a", at(HOUR)): (2, 0, 11, 6, 0)}
    ledger.close()


async def test_a_batch_sent_twice_counts_once(db: Database, tmp_path: Path) -> None:
    from gateway.database.values import Counts

    rows = {("team-a", "chat", at(HOUR)): Counts(requests=1, prompt_tokens=4)}
    assert await db.usage.write("host-1-abc:1-1", rows) is True
    assert await db.usage.write("host-1-abc:1-1", rows) is False
    assert await totals(db) == {("team-a", at(HOUR)): (1, 0, 4, 0, 0)}


async def test_a_stopped_processs_spool_is_recovered_exactly_once(db: Database,
                                                                  tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    dead = Ledger(db.usage, folder, lambda: HOUR)
    for _ in range(3):
        dead.record(exchange(10, 1))
    await dead.flush()  # batch 1: written and marked done
    dead.record(exchange(20, 2))
    dead.record(exchange(20, 2))
    # Batch 2 marked and written, then the process dies before marking it done...
    spool = dead.spool
    entries, spool.pending = spool.pending, []
    ident = f"{spool.name}:{entries[0][0]}-{entries[-1][0]}"
    spool.mark(ident, entries[0][0], entries[-1][0])
    from gateway.team.ledger import _sum
    await db.usage.write(ident, _sum(entries))
    dead.record(exchange(5, 5))  # ... after one more request, never marked
    os.write(spool._fd, b'{"e":[7,"team-a","ch')  # and halfway through a line
    os.close(spool._fd)  # its lock goes with it, as when a process is killed

    alive = Ledger(db.usage, folder, lambda: HOUR)
    assert await alive.recover() == 1
    assert await alive.recover() == 0  # nothing left to recover
    assert not spool.path.exists()
    assert await totals(db) == {("team-a", at(HOUR)): (6, 0, 75, 12, 0)}
    alive.close()


async def test_a_live_processs_spool_is_left_alone(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    one = Ledger(db.usage, folder, lambda: HOUR)
    one.record(exchange(1, 1))
    other = Ledger(db.usage, folder, lambda: HOUR)
    assert await other.recover() == 0
    assert await totals(db) == {}
    await one.flush()
    assert await totals(db) == {("team-a", at(HOUR)): (1, 0, 1, 1, 0)}
    one.close()
    other.close()
