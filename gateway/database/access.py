"""How the rest of the gateway reaches the database: the app key that holds it (absent
when `database.enabled` is false) and the errors that mean it cannot be used. Nothing
here imports SQLAlchemy, so that a gateway without a database (the sidecar) loads none
of it: `gateway.app` imports `engine.database_ctx` only when the database is enabled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.database.engine import Database


@dataclass(frozen=True, slots=True)
class Owner:
    """Who made a stored response, and the store (an upstream's, or the gateway's) that
    holds it: what the request path records and checks."""

    consumer: str
    deployment: str
    backend: str
    store_key: str


class DatabaseUnavailable(Exception):
    """The configured database cannot be opened or used (a missing password, a server
    that is down, a refused login)."""

    @classmethod
    def of(cls, exc: BaseException) -> DatabaseUnavailable:
        """What an operator is told of a driver's error: its first line, never the
        statement or its parameters (a key's digest, say)."""
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return cls(f"{type(cause).__name__}: {first}" if first else type(cause).__name__)


class SchemaError(Exception):
    """The database's schema cannot be used by this gateway as it is (`migrate`)."""


def unavailable() -> tuple[type[BaseException], ...]:
    """The errors that mean the database cannot be reached or used right now (imported
    when one is raised: an `except` clause is evaluated only then)."""
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, OSError)


# What must last: stored-response owners, runtime consumers, the ledger, console sessions.
DATABASE: web.AppKey[Database] = web.AppKey("database")

