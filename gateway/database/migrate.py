"""Schema migrations (Alembic, scripts in `migrations/`): run by `model-gateway db
upgrade`, or at start-up with `database.migrate: auto`. A database whose schema is
newer than this gateway knows is refused: an older gateway must not write into a
schema it does not understand (during a rollback, say).

Alembic costs ~11 MB: it is imported only to migrate. The start-up check reads the
revision with plain SQL and compares it with `HEAD` (a test keeps `HEAD` equal to the
newest script's revision). An empty database (no table at all: every first start) needs
no Alembic either: it gets the tables as `schema.metadata` has them, the rows the
migrations seed (`SEEDS`) and the revision `HEAD`, in one transaction, which is what the
migrations make of it (tests/integration/test_database_migrations.py compares the two,
tables, columns, indexes and rows, on SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.database.errors import SchemaError

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPTS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions (tests/unit/gateway/test_database.py checks).
HEAD = "0005"
# Every revision this gateway knows, oldest first (checked by the same test).
KNOWN = ("0001", "0002", "0003", "0004", "0005")
# The rows the migrations insert into a new database (0002: the change counter).
SEEDS = ("INSERT INTO changes (id, version) VALUES (1, 0)",)
# Alembic's own table, as Alembic creates it, so that later migrations find it.
VERSION_TABLE = ("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                 "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    return HEAD


def scripts_revisions() -> list[str]:
    """The revisions of the migration scripts, oldest first (for the test of KNOWN)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config())
    return [r.revision for r in reversed(list(scripts.walk_revisions()))]


def _known(revision: str) -> bool:
    return revision in KNOWN


def _current(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> str:
    """Migrate to `revision`; returns the revision the database is at. Replicas starting
    together migrate one at a time: the revision is read again under the lock."""
    async with _locked(engine) as connection:
        await connection.run_sync(_check_known)
        await connection.run_sync(lambda c: _upgrade(c, revision))
        at = await connection.run_sync(_current)
    assert at is not None
    return at


@contextlib.asynccontextmanager
async def _locked(engine: AsyncEngine, sqlite_begin: bool = False) -> AsyncIterator[AsyncConnection]:
    """A transaction that holds this gateway's migration lock (a file beside a SQLite
    database, an advisory lock on PostgreSQL) until it ends. `sqlite_begin`: Python's
    sqlite3 begins a transaction only before a row is written, so each CREATE would
    commit alone; an explicit BEGIN holds the DDL too, until the commit."""
    with _sqlite_lock(engine):
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                         {"key": ADVISORY_LOCK})
            elif sqlite_begin:
                await connection.exec_driver_sql("BEGIN")
            yield connection


async def create_if_empty(engine: AsyncEngine) -> bool:
    """The schema at head, made in one step, when the database has no table at all; False
    (nothing done) for any other database. Replicas starting together on one new
    database: the first creates, the others find it no longer empty under the lock."""
    from gateway.database.schema import metadata

    # A start killed midway must leave no half schema behind: all of it in one transaction.
    async with _locked(engine, sqlite_begin=True) as connection:
        if await connection.run_sync(lambda c: bool(inspect(c).get_table_names())):
            return False
        await connection.run_sync(metadata.create_all)
        await connection.execute(text(VERSION_TABLE))
        await connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                                 {"v": HEAD})
        for seed in SEEDS:
            await connection.execute(text(seed))
    return True


def _upgrade(connection: Connection, revision: str) -> None:
    import logging

    # Alembic announces each of its plugins at INFO; the migrations it runs stay there.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from alembic import command

    command.upgrade(_config(connection), revision)


ADVISORY_LOCK = 7_311_022  # any constant: one lock for this gateway's migrations


@contextlib.contextmanager
def _sqlite_lock(engine: AsyncEngine) -> Iterator[None]:
    """A file lock beside a SQLite database, held while it is migrated."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(database + ".migrate-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_known(connection: Connection) -> None:
    at = _current(connection)
    if at is not None and not _known(at):
        raise SchemaError(
            f"the database's schema is at revision {at}, newer than this gateway knows "
            f"(its newest is {head()}): run a gateway at least as new as the one that "
            "migrated it")


async def prepare(engine: AsyncEngine, *, migrate: bool) -> None:
    """At start-up: the schema must be this gateway's head, migrated there if allowed."""
    async with engine.connect() as connection:
        await connection.run_sync(_check_known)
        at = await connection.run_sync(_current)
    if at == head():
        return
    if not migrate:
        raise SchemaError(
            f"the database's schema is at revision {at or 'none'}, this gateway needs {head()}: "
            "run `model-gateway db upgrade` (or set database.migrate: auto)")
    if at is None and await create_if_empty(engine):
        return
    await upgrade(engine)
