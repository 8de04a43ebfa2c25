"""The errors that mean the database cannot be used, for every layer to catch: nothing
here imports SQLAlchemy (its own errors are imported by `unavailable()` only when one is
being caught).

    Exception
     ├── DatabaseUnavailable   the configured database cannot be opened or used
     └── SchemaError           its schema cannot be used by this gateway as it is
"""

from __future__ import annotations


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
