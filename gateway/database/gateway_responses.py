"""Responses the gateway stores itself, for translated backends (which store nothing):
each response's own input items and the Response object, and the response it
continued. A follow-up's conversation is read in one query (a recursive CTE over the
`previous_id` links, oldest first), so storage grows with the conversation, not with
its square. Who may read a row is its owner's business (`responses.ResponseOwners`:
the owner is written first, then the row)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.database.group_commit import GroupCommit
from gateway.database.schema import gateway_responses as table

# A conversation longer than this many responses is cut there (its oldest part is not
# read): a guard, far beyond what any context window holds.
MAX_CHAIN = 2_000


@dataclass(frozen=True, slots=True)
class Record:
    ident: str
    previous: str | None
    status: str
    response: dict[str, Any]
    items: list[dict[str, Any]]


def _record(row: Any) -> Record:
    return Record(row.id, row.previous_id, row.status, orjson.loads(row.response),
                  orjson.loads(row.input_items))


# A response's end, written by its id: one statement for a batch of them.
_FINISH = update(table).where(table.c.id == bindparam("ident")).values(
    status=bindparam("new_status"), response=bindparam("new_response"))


class GatewayResponses:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Many streams start and end at once: their rows share transactions.
        self._writes: GroupCommit[tuple[str, dict[str, Any]]] = GroupCommit(self._write)

    async def create(self, ident: str, previous: str | None, status: str,
                     response: dict[str, Any], items: list[dict[str, Any]]) -> None:
        await self._writes.add(("create", {
            "id": ident, "previous_id": previous, "status": status,
            "response": orjson.dumps(response).decode(), "input_items": orjson.dumps(items).decode(),
            "created_at": datetime.datetime.now(datetime.UTC)}))

    async def finish(self, ident: str, status: str, response: dict[str, Any]) -> None:
        await self._writes.add(("finish", {"ident": ident, "new_status": status,
                                           "new_response": orjson.dumps(response).decode()}))

    async def _write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """New rows first, then ends (a response's end is written only after its row was:
        `gateway_store` asks for it once `create` returned)."""
        created = [row for kind, row in batch if kind == "create"]
        finished = [row for kind, row in batch if kind == "finish"]
        async with self._engine.begin() as connection:
            if created:
                await connection.execute(insert(table), created)
            if finished:
                await connection.execute(_FINISH, finished)

    async def get(self, ident: str) -> Record | None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(table).where(table.c.id == ident))).first()
        return None if row is None else _record(row)

    async def chain(self, ident: str) -> list[Record] | None:
        """The conversation that ends with `ident`, oldest first; [] when `ident` is not
        here, None when a response it continues was deleted."""
        columns = (table.c.id, table.c.previous_id, table.c.status, table.c.response,
                   table.c.input_items)
        chain = select(*columns, literal(0).label("depth")).where(table.c.id == ident) \
            .cte("chain", recursive=True)
        chain = chain.union_all(
            select(*columns, (chain.c.depth + 1).label("depth"))
            .where(table.c.id == chain.c.previous_id, chain.c.depth < MAX_CHAIN))
        async with self._engine.connect() as connection:
            rows = (await connection.execute(select(chain).order_by(chain.c.depth.desc()))).all()
        if rows and rows[0].previous_id is not None and len(rows) <= MAX_CHAIN:
            return None
        return [_record(row) for row in rows]

    async def delete(self, ident: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(delete(table).where(table.c.id == ident))
