"""The usage ledger in the database: rows per consumer, deployment, hour (UTC), client API
and backend API, written in batches. A batch and its rows are one transaction, and the
batch's id is recorded with it: a batch sent twice (a retry whose answer was lost, a
replay after a crash) is recognised and not counted again. The same transaction adds the
batch to the day rollup (`usage_days`, UTC days) that reports read (`usage_rollups`)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.database.schema import usage, usage_batches, usage_days
from gateway.database.values import COUNTS, Counts, Key


def _apis(key: Key) -> tuple[str, str, datetime.datetime, str, str]:
    if len(key) == 5:
        return key
    consumer, deployment, hour = key[0], key[1], key[2]
    return consumer, deployment, hour, "", ""


class UsageLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def write(self, batch_id: str, rows: dict[Key, Counts]) -> bool:
        """False when the batch was written before: nothing is added again."""
        when = datetime.datetime.now(datetime.UTC)
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        days: dict[tuple[str, str, datetime.date, str, str], Counts] = {}
        for key, counts in rows.items():
            consumer, deployment, hour, api, backend_api = _apis(key)
            day = hour.astimezone(datetime.UTC).date()
            days.setdefault((consumer, deployment, day, api, backend_api), Counts()).add(counts)
        try:
            async with self._engine.begin() as c:
                await c.execute(insert(usage_batches).values(id=batch_id, written_at=when))
                for key, counts in rows.items():
                    consumer, deployment, hour, api, backend_api = _apis(key)
                    statement = dialect.insert(usage).values(
                        consumer=consumer, deployment=deployment, hour=hour, api=api,
                        backend_api=backend_api, **counts.as_dict())
                    await c.execute(statement.on_conflict_do_update(
                        index_elements=["consumer", "deployment", "hour", "api", "backend_api"],
                        set_={name: usage.c[name] + statement.excluded[name] for name in COUNTS}))
                for (consumer, deployment, day, api, backend_api), counts in days.items():
                    statement = dialect.insert(usage_days).values(
                        consumer=consumer, deployment=deployment, day=day, api=api,
                        backend_api=backend_api, **counts.as_dict())
                    await c.execute(statement.on_conflict_do_update(
                        index_elements=["consumer", "day", "deployment", "api", "backend_api"],
                        set_={name: usage_days.c[name] + statement.excluded[name]
                              for name in COUNTS}))
        except IntegrityError:
            return False
        return True

    async def rows(self, start: datetime.datetime, end: datetime.datetime,
                   consumer: str | None = None, deployment: str | None = None
                   ) -> list[tuple[str, str, datetime.datetime, Counts]]:
        query = select(usage).where(usage.c.hour >= start, usage.c.hour < end)
        if consumer is not None:
            query = query.where(usage.c.consumer == consumer)
        if deployment is not None:
            query = query.where(usage.c.deployment == deployment)
        async with self._engine.connect() as c:
            found = (await c.execute(query.order_by(usage.c.hour))).all()
        out = []
        for r in found:
            hour = r.hour if r.hour.tzinfo else r.hour.replace(tzinfo=datetime.UTC)
            out.append((r.consumer, r.deployment, hour,
                        Counts(**{name: int(getattr(r, name)) for name in COUNTS})))
        return out


def group(rows: Sequence[tuple[str, str, datetime.datetime, Counts]], by: str,
          zone: datetime.tzinfo) -> list[dict[str, Any]]:
    """Hourly rows summed per consumer, deployment and day or month (in `zone`)."""
    out: dict[tuple[str, str, str], Counts] = {}
    shape = "%Y-%m-%d" if by == "day" else ("%Y-%m" if by == "month" else "%Y-%m-%dT%H:00%z")
    for consumer, deployment, hour, counts in rows:
        period = hour.astimezone(zone).strftime(shape)
        out.setdefault((consumer, deployment, period), Counts()).add(counts)
    return [{"consumer": c, "deployment": d, "period": p, **counts.as_dict()}
            for (c, d, p), counts in sorted(out.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))]
