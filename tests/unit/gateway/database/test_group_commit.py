"""Group commit: writes made while one is on its way share the next transaction; each
caller learns of its own write; a caller that leaves cancels nobody else's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config.models import DatabaseConfig
from gateway.database.engine import make_engine
from gateway.database.gateway_responses import GatewayResponses
from gateway.database.group_commit import GroupCommit
from gateway.database.migrate import prepare
from tests.waiting import until


class Log:
    """A write that records its batches; the first waits until it is let go, so that
    the writes behind it queue up (an event, not a sleep)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.hold = asyncio.Event()
        self.started = asyncio.Event()  # the first write is on its way

    async def write(self, items: list[str]) -> None:
        self.batches.append(items)
        self.started.set()
        if len(self.batches) == 1:
            await self.hold.wait()
        if any(item.startswith("bad") for item in items):
            raise ValueError("refused: " + ",".join(i for i in items if i.startswith("bad")))


async def test_writes_behind_one_share_the_next_batch() -> None:
    log = Log()
    commits = GroupCommit(log.write)
    first = asyncio.create_task(commits.add("a"))
    await log.started.wait()
    rest = [asyncio.create_task(commits.add(x)) for x in ("b", "c", "d")]
    await until(lambda: len(commits._waiting) == 3, what="the three queued behind the first")
    log.hold.set()
    await asyncio.gather(first, *rest)
    assert log.batches == [["a"], ["b", "c", "d"]]


async def test_one_bad_write_fails_only_its_caller() -> None:
    log = Log()
    log.hold.set()
    commits = GroupCommit(log.write)
    blocker = asyncio.create_task(commits.add("a"))
    await log.started.wait()
    results = await asyncio.gather(commits.add("b"), commits.add("bad1"), commits.add("c"),
                                   blocker, return_exceptions=True)
    assert results[0] is None and results[2] is None and results[3] is None
    assert isinstance(results[1], ValueError) and "bad1" in str(results[1])
    # Tried together, then each alone.
    assert ["b", "bad1", "c"] in log.batches and ["b"] in log.batches and ["c"] in log.batches


async def test_a_caller_that_leaves_does_not_cancel_the_write() -> None:
    log = Log()
    commits = GroupCommit(log.write)
    leaving = asyncio.create_task(commits.add("a"))
    await log.started.wait()
    leaving.cancel()
    staying = asyncio.create_task(commits.add("b"))
    await until(lambda: len(commits._waiting) == 1, what="b queued behind a")
    log.hold.set()
    await staying
    assert log.batches == [["a"], ["b"]]


async def test_callers_learn_of_a_writer_cancelled_under_them() -> None:
    log = Log()
    commits = GroupCommit(log.write)
    writing = asyncio.create_task(commits.add("a"))
    await log.started.wait()
    waiting = asyncio.create_task(commits.add("b"))
    await until(lambda: len(commits._waiting) == 1, what="b queued behind a")
    assert commits._writer is not None
    commits._writer.cancel()  # the app closes
    results = await asyncio.gather(writing, waiting, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results


async def test_many_stored_responses_at_once_are_all_written_and_ended(tmp_path: Path) -> None:
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path}/g.db"))
    try:
        await prepare(engine, migrate=True)
        store = GatewayResponses(engine)
        idents = [f"resp_{i}" for i in range(40)]
        await asyncio.gather(*(store.create(i, None, "in_progress", {"id": i}, [{"n": i}])
                               for i in idents))
        await asyncio.gather(*(store.finish(i, "completed", {"id": i, "done": True})
                               for i in idents))
        for ident in idents:
            record = await store.get(ident)
            assert record is not None and record.status == "completed"
            assert record.response == {"id": ident, "done": True} and record.items == [{"n": ident}]
    finally:
        await engine.dispose()
