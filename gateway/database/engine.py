"""The database engine from `database.url`: SQLite through aiosqlite (WAL, so that
several processes on one host can share a file), PostgreSQL through asyncpg with
the password read from the environment or a file."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.config import DatabaseConfig, GatewayConfig
from gateway.database.errors import DatabaseUnavailable, unavailable


def engine_url(config: DatabaseConfig) -> URL:
    url = make_url(config.url)
    if url.drivername == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    url = url.set(drivername="postgresql+asyncpg")
    password = None
    if config.password_env:
        password = os.environ.get(config.password_env)
        if not password:
            raise DatabaseUnavailable(f"database.password_env: {config.password_env} is not set")
    elif config.password_file:
        try:
            password = config.password_file.read_text().strip()
        except OSError as exc:
            raise DatabaseUnavailable(f"database.password_file: {exc.strerror}") from None
    return url.set(password=password) if password else url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# These log each statement with its parameters at DEBUG and INFO (a key's digest,
# say): whatever level the process logs at, they never go below WARNING.
DRIVER_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool", "asyncpg")


def make_engine(config: DatabaseConfig) -> AsyncEngine:
    for name in DRIVER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    url = engine_url(config)
    if url.drivername.startswith("sqlite"):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


class Database:
    """The engine an app holds, and the features' queries on it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Imported here: each feature module holds its own queries.
        from gateway.database.console_sessions import ConsoleSessions
        from gateway.database.gateway_responses import GatewayResponses
        from gateway.database.responses import ResponseOwners
        from gateway.database.team import Team
        from gateway.database.usage import UsageLedger
        from gateway.database.usage_rollups import UsageRollups

        self.responses = ResponseOwners(engine)
        self.gateway_responses = GatewayResponses(engine)
        self.team = Team(engine)
        self.usage = UsageLedger(engine)
        self.rollups = UsageRollups(engine)
        self.sessions = ConsoleSessions(engine)

    async def close(self) -> None:
        await self.engine.dispose()


def database_ctx(key: web.AppKey[Database], config_of: Callable[[web.Application], GatewayConfig]) -> Any:
    """Opens the database (migrated or created as `database.migrate` says) under `key`."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        from gateway.database.migrate import prepare

        config = config_of(app).database

        engine = make_engine(config)
        try:
            await prepare(engine, migrate=config.migrate == "auto")
        except unavailable() as exc:
            await engine.dispose()
            raise DatabaseUnavailable.of(exc) from None
        except BaseException:
            await engine.dispose()
            raise
        app[key] = database = Database(engine)
        yield
        await database.close()

    return ctx
