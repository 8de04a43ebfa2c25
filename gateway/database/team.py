"""Consumers and keys made at runtime, and the audit trail of every change.

A change, its audit row and a bump of the change counter are one transaction: a
replica that sees the new counter sees the change, and nothing is changed without
its record. A key is shown once, when it is made, and stored only as its digest
and the first characters that let an operator recognise it.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.database.schema import api_keys, audit_log, changes, consumers
from policies.auth import hash_key

KEY_PREFIX = "mgk_"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """SQLite gives naive datetimes back: they were written in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True, slots=True)
class StoredConsumer:
    name: str
    spec: dict[str, Any]
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    consumer: str
    digest: str
    prefix: str
    description: str | None
    created_at: datetime.datetime
    expires_at: datetime.datetime | None
    revoked_at: datetime.datetime | None

    def public(self) -> dict[str, Any]:
        """What the admin API shows of a key: never its digest."""
        return {"id": self.id, "consumer": self.consumer, "prefix": self.prefix,
                "description": self.description, "created_at": self.created_at.isoformat(),
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the runtime needs, read in one go: the counter it was read at."""

    version: int
    consumers: tuple[StoredConsumer, ...]
    keys: tuple[StoredKey, ...]  # not revoked


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


class Team:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- reading ------------------------------------------------------------------------
    async def version(self) -> int:
        async with self._engine.connect() as c:
            return int((await c.execute(select(changes.c.version).where(changes.c.id == 1))).scalar_one())

    async def snapshot(self) -> Snapshot:
        async with self._engine.connect() as c:
            version = int((await c.execute(select(changes.c.version).where(changes.c.id == 1)))
                          .scalar_one())
            rows = (await c.execute(select(consumers))).all()
            keys = (await c.execute(select(api_keys).where(api_keys.c.revoked_at.is_(None)))).all()
        return Snapshot(version, tuple(_consumer(r) for r in rows), tuple(_key(r) for r in keys))

    async def consumer(self, name: str) -> StoredConsumer | None:
        async with self._engine.connect() as c:
            row = (await c.execute(select(consumers).where(consumers.c.name == name))).first()
        return _consumer(row) if row else None

    async def keys(self, consumer: str) -> list[StoredKey]:
        async with self._engine.connect() as c:
            rows = (await c.execute(select(api_keys).where(api_keys.c.consumer == consumer)
                                    .order_by(api_keys.c.created_at))).all()
        return [_key(r) for r in rows]

    async def consumers_after(self, after: str | None, limit: int) -> list[StoredConsumer]:
        """One page of consumers by name: the first `limit` after the cursor `after`."""
        query = select(consumers).order_by(consumers.c.name).limit(limit)
        if after is not None:
            query = query.where(consumers.c.name > after)
        async with self._engine.connect() as c:
            rows = (await c.execute(query)).all()
        return [_consumer(r) for r in rows]

    async def keys_before(self, consumer: str, before: str | None, limit: int) -> list[StoredKey]:
        """One page of a consumer's keys, newest first: the `limit` made before the key
        `before` (a cursor: a key id; an unknown one gives the first page)."""
        query = (select(api_keys).where(api_keys.c.consumer == consumer)
                 .order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc()).limit(limit))
        async with self._engine.connect() as c:
            if before is not None:
                made = (await c.execute(select(api_keys.c.created_at).where(
                    api_keys.c.id == before, api_keys.c.consumer == consumer))).scalar()
                if made is not None:
                    query = query.where(tuple_(api_keys.c.created_at, api_keys.c.id)
                                        < tuple_(made, before))
            rows = (await c.execute(query)).all()
        return [_key(r) for r in rows]

    async def audit(self, limit: int, before: int | None) -> list[dict[str, Any]]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(audit_log.c.id < before)
        async with self._engine.connect() as c:
            rows = (await c.execute(query)).all()
        return [{"id": r.id, "at": _utc(r.at).isoformat(), "actor": r.actor,  # type: ignore[union-attr]
                 "action": r.action, "target": r.target, "detail": r.detail} for r in rows]

    # --- changing -----------------------------------------------------------------------
    async def create_consumer(self, name: str, spec: dict[str, Any], actor: str) -> StoredConsumer:
        when = now()
        async with self._engine.begin() as c:
            if (await c.execute(select(consumers.c.name).where(consumers.c.name == name))).first():
                raise Conflict(f"consumer {name} exists")
            await c.execute(insert(consumers).values(name=name, spec=spec, created_at=when,
                                                     updated_at=when))
            await _record(c, actor, "consumer.create", name, {"spec": spec})
        return StoredConsumer(name, spec, when, when)

    async def update_consumer(self, name: str, spec: dict[str, Any], actor: str) -> StoredConsumer:
        when = now()
        async with self._engine.begin() as c:
            row = (await c.execute(select(consumers).where(consumers.c.name == name))).first()
            if row is None:
                raise NotFound(name)
            await c.execute(update(consumers).where(consumers.c.name == name)
                            .values(spec=spec, updated_at=when))
            await _record(c, actor, "consumer.update", name, {"spec": spec})
        return StoredConsumer(name, spec, _utc(row.created_at) or when, when)

    async def delete_consumer(self, name: str, actor: str) -> None:
        async with self._engine.begin() as c:
            await c.execute(delete(api_keys).where(api_keys.c.consumer == name))
            gone = await c.execute(delete(consumers).where(consumers.c.name == name))
            if not gone.rowcount:
                raise NotFound(name)
            await _record(c, actor, "consumer.delete", name, {})

    async def create_key(self, consumer: str, description: str | None,
                         expires_at: datetime.datetime | None, actor: str) -> tuple[StoredKey, str]:
        """A new key: (what is stored, the key itself, which is not stored anywhere)."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        stored = StoredKey("key_" + secrets.token_hex(8), consumer, hash_key(key), key[:12],
                           description, now(), expires_at, None)
        async with self._engine.begin() as c:
            if (await c.execute(select(consumers.c.name).where(consumers.c.name == consumer))).first() \
                    is None:
                raise NotFound(consumer)
            await c.execute(insert(api_keys).values(
                id=stored.id, consumer=consumer, digest=stored.digest, prefix=stored.prefix,
                description=description, created_at=stored.created_at, expires_at=expires_at))
            await _record(c, actor, "key.create", consumer, {
                "key_id": stored.id, "prefix": stored.prefix,
                "expires_at": expires_at.isoformat() if expires_at else None})
        return stored, key

    async def revoke_key(self, consumer: str, key_id: str, actor: str) -> None:
        async with self._engine.begin() as c:
            done = await c.execute(update(api_keys).where(
                api_keys.c.id == key_id, api_keys.c.consumer == consumer,
                api_keys.c.revoked_at.is_(None)).values(revoked_at=now()))
            if not done.rowcount:
                raise NotFound(key_id)
            await _record(c, actor, "key.revoke", consumer, {"key_id": key_id})

    async def count(self) -> int:
        async with self._engine.connect() as c:
            return int((await c.execute(select(func.count()).select_from(consumers))).scalar_one())


async def _record(c: AsyncConnection, actor: str, action: str, target: str,
                  detail: dict[str, Any]) -> None:
    await c.execute(insert(audit_log).values(at=now(), actor=actor, action=action, target=target,
                                             detail=detail))
    await c.execute(update(changes).where(changes.c.id == 1).values(version=changes.c.version + 1))


def _consumer(row: Any) -> StoredConsumer:
    return StoredConsumer(row.name, dict(row.spec), _utc(row.created_at),  # type: ignore[arg-type]
                          _utc(row.updated_at))  # type: ignore[arg-type]


def _key(row: Any) -> StoredKey:
    return StoredKey(row.id, row.consumer, row.digest, row.prefix, row.description,
                     _utc(row.created_at), _utc(row.expires_at), _utc(row.revoked_at))  # type: ignore[arg-type]

