"""The usage ledger on its way to the database, off the request path and exactly once.

Each settled request is appended to this process's spool file (one small write, no
database call): `{"e": [seq, consumer, deployment, api, backend_api, hour, counts...]}`
(a spool of a gateway before the APIs and media units were kept has
`[seq, consumer, deployment, hour, counts...]`: read as no APIs and no units). Every
`ledger.flush_seconds` the entries not yet sent are summed per consumer, deployment,
hour and APIs, the batch is marked in the spool (`{"b": [id, first, last]}`), written to
the database in one transaction with its id, and marked done (`{"d": id}`).

A spool is held under an exclusive file lock while its process lives. A spool whose
lock is free belongs to a process that stopped before finishing: any replica that
finds one (at start-up, then every minute) sends its marked batches again with
their ids (already written ones are recognised and skipped) and its unmarked
entries as a new batch, then deletes it. At shutdown the last entries are sent.
So a request is counted once, even when a write is retried or a replica is killed
in the middle of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import hashlib
import logging
import operator
import os
import secrets
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway.core.flow import Flow
from gateway.database.access import DATABASE
from gateway.database.errors import unavailable
from gateway.database.values import COUNTS, Counts, Key
from gateway.runtime.live import LIVE

if TYPE_CHECKING:
    from gateway.database.usage import UsageLedger

log = logging.getLogger("gateway.team.ledger")

ORPHANS_EVERY_S = 60.0


# seq, consumer, deployment, hour, counts (in COUNTS' order), api, backend_api
Entry = tuple[int, str, str, int, tuple[int, ...], str, str]


def _hour(epoch_hour: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch_hour, datetime.UTC)


class Spool:
    """One process's spool file: appended to, never rewritten but emptied when done."""

    def __init__(self, folder: Path) -> None:
        self.name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = folder / f"ledger-{self.name}.spool"
        # The folders this process made (deepest first): removed at close if empty.
        self.made: list[Path] = []
        for _ in range(3):  # another process may remove an empty folder it made meanwhile
            self.made = _make_folders(folder)
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                break
            except FileNotFoundError:
                continue
        else:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.seq = 0
        self.pending: list[Entry] = []  # entries not yet in a batch
        # (consumer, deployment, api, backend_api) as JSON
        self._names: dict[tuple[str, str, str, str], bytes] = {}

    def add(self, consumer: str, deployment: str, hour: int, counts: tuple[int, ...],
            api: str = "", backend_api: str = "") -> None:
        # On every request: one formatted write, no JSON encoder, no datetime.
        self.seq += 1
        key = (consumer, deployment, api, backend_api)
        names = self._names.get(key)
        if names is None:
            names = self._names[key] = orjson.dumps(list(key))[1:-1]
        values: tuple[Any, ...] = (self.seq, names, hour, *counts)
        os.write(self._fd, b'{"e":[%d,%b,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d]}\n' % values)
        self.pending.append((self.seq, consumer, deployment, hour, counts, api, backend_api))

    def mark(self, batch_id: str, first: int, last: int) -> None:
        self._write({"b": [batch_id, first, last]})

    def done(self, batch_id: str) -> None:
        self._write({"d": batch_id})
        if not self.pending:
            os.ftruncate(self._fd, 0)  # everything is in the database: start the file afresh

    def _write(self, line: dict[str, Any]) -> None:
        os.write(self._fd, orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def close(self) -> None:
        os.close(self._fd)
        if self.path.stat().st_size == 0:
            self.path.unlink(missing_ok=True)
            # And the folders it made, as long as nothing else is in them (another
            # process's spool, or what a stopped one still owes, keeps them).
            for made in self.made:
                try:
                    made.rmdir()
                except OSError:
                    break


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones this call made, deepest first."""
    missing: list[Path] = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    made = []
    for candidate in reversed(missing):
        try:
            candidate.mkdir()
            made.append(candidate)
        except FileExistsError:  # another process made it just now: it is theirs
            pass
    return list(reversed(made))


def _replay(path: Path) -> tuple[list[tuple[str, dict[Key, Counts]]], dict[Key, Counts], int]:
    """What a stopped process's spool still owes: its marked batches not done (id, rows),
    the rows of entries never marked, and the highest sequence number seen."""
    entries: dict[int, Entry] = {}
    batches: dict[str, tuple[int, int]] = {}
    finished: set[str] = set()
    for raw in path.read_bytes().splitlines():
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # a line cut short by the crash: never marked, never sent
        if "e" in line:
            seq, consumer, deployment, *rest = line["e"]
            api = backend_api = ""
            if rest and isinstance(rest[0], str):  # this version's entry: with its APIs
                api, backend_api, *rest = rest
            hour, *counts = rest
            counts += [0] * (len(COUNTS) - len(counts))  # an older entry: no media units
            entries[seq] = (seq, consumer, deployment, hour, tuple(counts), api, backend_api)
        elif "b" in line:
            ident, first, last = line["b"]
            batches[ident] = (first, last)
        elif "d" in line:
            finished.add(line["d"])
    owed: list[tuple[str, dict[Key, Counts]]] = []
    covered = 0
    for ident, (first, last) in batches.items():
        covered = max(covered, last)
        if ident not in finished:
            owed.append((ident, _sum(entries[s] for s in range(first, last + 1) if s in entries)))
    rest = _sum(entry for seq, entry in entries.items() if seq > covered)
    return owed, rest, max(entries, default=0)


def _claim(path: Path) -> tuple[int, tuple[list[tuple[str, dict[Key, Counts]]],
                                          dict[Key, Counts], int]] | None:
    """The lock of a stopped process's spool, and what it owes; None if it is in use."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd, _replay(path)


def _sum(entries: Iterable[Entry]) -> dict[Key, Counts]:
    sums: dict[tuple[str, str, int, str, str], tuple[int, ...]] = {}
    for _, consumer, deployment, hour, counts, api, backend_api in entries:
        key = (consumer, deployment, hour, api, backend_api)
        total = sums.get(key)
        sums[key] = counts if total is None else tuple(map(operator.add, total, counts))
    return {(c, d, _hour(h), a, b): Counts(*total) for (c, d, h, a, b), total in sums.items()}


class Ledger:
    def __init__(self, database: UsageLedger, folder: Path, clock: Callable[[], float]) -> None:
        self.database = database
        self.folder = folder
        self.spool = Spool(folder)
        self.clock = clock  # epoch seconds: which hour a request belongs to
        self.written = 0  # batches written, for tests and metrics
        self.failures = 0
        # A batch marked and sent whose write failed: sent again exactly as it was (the
        # write may have committed before its answer was lost), before anything newer.
        self._retry: tuple[str, list[Entry]] | None = None

    def record(self, ex: Flow) -> None:
        """A settled request: counted with what metrics count for it (in COUNTS' order)."""
        if not ex.deployment or not ex.consumer:
            return
        u = ex.usage
        failed = int(ex.status >= 400 or ex.status == 499)
        counts = (1, failed, 0, 0, 0, 0, 0, 0, 0, 0) if u is None else (
            1, failed, u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.reasoning_tokens,
            ex.cost_micros, u.images, u.audio_seconds, u.characters)
        self.spool.add(ex.consumer, ex.deployment, int(self.clock()) // 3600 * 3600, counts,
                       ex.api_name, ex.backend_api)

    async def flush(self) -> None:
        spool = self.spool
        if self._retry is None:
            if not spool.pending:
                return
            entries, spool.pending = spool.pending, []
            ident = f"{spool.name}:{entries[0][0]}-{entries[-1][0]}"
            spool.mark(ident, entries[0][0], entries[-1][0])
            self._retry = (ident, entries)
        ident, entries = self._retry
        try:
            await self.database.write(ident, _sum(entries))
        except unavailable():
            self.failures += 1
            raise
        self._retry = None
        self.written += 1
        spool.done(ident)

    async def recover(self) -> int:
        """Send what stopped processes' spools still owe; the number of spools recovered."""
        recovered = 0
        for path in sorted(self.folder.glob("ledger-*.spool")):
            if path == self.spool.path:
                continue
            claimed = await asyncio.to_thread(_claim, path)  # a file read: not in the loop
            if claimed is None:
                continue  # its process is alive, or it is gone already
            fd, (owed, rest, last) = claimed
            try:
                for ident, rows in owed:
                    await self.database.write(ident, rows)
                if rest:
                    await self.database.write(f"{path.stem}:rest-{last}", rows=rest)
                path.unlink()
                recovered += 1
            finally:
                os.close(fd)
        return recovered

    def close(self) -> None:
        self.spool.close()


def ledger_ctx(key: web.AppKey[Ledger], make: Callable[[web.Application], Ledger | None]) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        ledger = make(app)
        if ledger is None:
            yield
            return
        app[key] = ledger
        with contextlib.suppress(*unavailable()):
            await ledger.recover()
        task = asyncio.get_running_loop().create_task(_loop(app, ledger))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for _ in range(3):  # the last entries, with a retry or two
            try:
                await ledger.flush()
                break
            except unavailable() as exc:
                log.warning("ledger flush at shutdown failed (%s); the spool keeps it",
                            type(exc).__name__)
                await asyncio.sleep(0.2)
        ledger.close()

    return ctx


def make_ledger(app: web.Application) -> Ledger | None:
    """The ledger the config asks for, spooling under its folder; None when it is off."""
    config = app[LIVE].config.ledger
    if not config.enabled:
        return None
    # Spools are replayed into the database of whoever finds them: one folder per
    # database, so that two gateways on one host never mix their ledgers.
    url = hashlib.sha256(app[LIVE].config.database.url.encode()).hexdigest()[:16]
    folder = (config.spool_dir or Path(tempfile.gettempdir()) / "model-gateway-ledger") / url
    return Ledger(app[DATABASE].usage, folder, time.time)


async def _loop(app: web.Application, ledger: Ledger) -> None:
    since_orphans = 0.0
    while True:
        interval = app[LIVE].config.ledger.flush_seconds
        await asyncio.sleep(interval)
        try:
            await ledger.flush()
            since_orphans += interval
            if since_orphans >= ORPHANS_EVERY_S:
                since_orphans = 0.0
                await ledger.recover()
        except unavailable() as exc:
            log.warning("ledger batch not written (%s); it stays in the spool", type(exc).__name__)


LEDGER = web.AppKey("ledger", Ledger)  # settled usage on its way to the database
