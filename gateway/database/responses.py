"""Who owns a stored response, and where it is stored. Owners never change, so
lookups are cached in the process; a deleted response may linger in another
replica's cache, which then asks the upstream, which answers 404 itself.

An owner is written before the response's id reaches the client (a follow-up through
another replica must find it). Writes made while one is on its way share the next
transaction (`group_commit`)."""

from __future__ import annotations

import datetime
from collections import OrderedDict

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.database.group_commit import GroupCommit
from gateway.database.schema import stored_responses
from gateway.database.values import Owner

CACHE_ENTRIES = 10_000


class ResponseOwners:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._cache: OrderedDict[str, Owner] = OrderedDict()
        self._writes: GroupCommit[dict[str, object]] = GroupCommit(self._insert)

    def _keep(self, ident: str, owner: Owner) -> None:
        self._cache[ident] = owner
        self._cache.move_to_end(ident)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    async def remember(self, ident: str, owner: Owner) -> None:
        row = {"id": ident, "consumer": owner.consumer, "deployment": owner.deployment,
               "backend": owner.backend, "store_key": owner.store_key,
               "created_at": datetime.datetime.now(datetime.UTC)}
        await self._writes.add(row)
        self._keep(ident, owner)

    async def _insert(self, rows: list[dict[str, object]]) -> None:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(stored_responses), rows)
        except IntegrityError:
            if len(rows) > 1:
                raise  # one of them is: the batch is written again row by row
            # Already known (a retried stream): the first owner stands.

    async def owner(self, ident: str) -> Owner | None:
        cached = self._cache.get(ident)
        if cached is not None:
            return cached
        async with self._engine.connect() as connection:
            row = (await connection.execute(
                select(stored_responses.c.consumer, stored_responses.c.deployment,
                       stored_responses.c.backend, stored_responses.c.store_key)
                .where(stored_responses.c.id == ident))).first()
        if row is None:
            return None
        owner = Owner(*row)
        self._keep(ident, owner)
        return owner

    async def forget(self, ident: str) -> None:
        self._cache.pop(ident, None)
        async with self._engine.begin() as connection:
            await connection.execute(delete(stored_responses).where(stored_responses.c.id == ident))
