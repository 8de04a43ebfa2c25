"""The console's sessions, kept in the database so that every replica knows them and a
logout (or an expiry) ends one everywhere at once. A session is found by the SHA-256 of
its cookie's value: the value itself is never stored, so that reading the table opens
no session."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.database.schema import console_sessions


def session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True, slots=True)
class StoredSession:
    actor: str
    proof: str
    csrf: str
    created_at: datetime.datetime
    expires_at: datetime.datetime


class ConsoleSessions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def open(self, token: str, actor: str, proof: str, csrf: str,
                   expires_at: datetime.datetime) -> None:
        now = datetime.datetime.now(datetime.UTC)
        async with self._engine.begin() as c:
            # Expired sessions go when a new one comes: no sweeper task of its own.
            await c.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
            await c.execute(insert(console_sessions).values(
                id=session_id(token), actor=actor, proof=proof, csrf=csrf, created_at=now,
                expires_at=expires_at))

    async def find(self, token: str) -> StoredSession | None:
        """The session, if it exists and has not expired."""
        async with self._engine.connect() as c:
            row = (await c.execute(select(console_sessions).where(
                console_sessions.c.id == session_id(token)))).first()
        if row is None or _utc(row.expires_at) <= datetime.datetime.now(datetime.UTC):
            return None
        return StoredSession(row.actor, row.proof, row.csrf, _utc(row.created_at),
                             _utc(row.expires_at))

    async def extend(self, token: str, expires_at: datetime.datetime) -> None:
        async with self._engine.begin() as c:
            await c.execute(update(console_sessions).where(
                console_sessions.c.id == session_id(token)).values(expires_at=expires_at))

    async def close(self, token: str) -> None:
        async with self._engine.begin() as c:
            await c.execute(delete(console_sessions).where(
                console_sessions.c.id == session_id(token)))
