"""Group commit: writes made while one is on its way share the next transaction, so that
many requests writing at once cost one commit between them, not one each; SQLite's single
writer needs it under load, and PostgreSQL's round trips are fewer for it.

A caller awaits its own write and learns of its own failure (a batch that fails is
written again item by item, so that one bad write fails only its caller); a caller that is
cancelled (its client left) cancels nobody else's write: the batches run in a task of
their own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]]) -> None:
        """`write`: one transaction for a batch of items, in the order they came."""
        self._write = write
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        """Once `item` is committed (or its batch failed: that batch's error)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._write([item for item, _ in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0][1], exc)
                        continue
                    # One bad write must fail only its own caller: each again, alone.
                    for item, done in batch:
                        try:
                            await self._write([item])
                        except Exception as alone:
                            _settle(done, alone)
                        else:
                            _settle(done, None)
                    continue
                for _, done in batch:
                    _settle(done, None)
        except asyncio.CancelledError:
            # The writer itself was cancelled (the app is closing): its callers learn so,
            # rather than waiting for good.
            for _, done in [*batch, *self._waiting]:
                if not done.done():
                    done.cancel()
            self._waiting = []
            raise
        finally:
            self._writer = None


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
