"""Usage from the ledger: rows and totals for a time range (JSON, or CSV for
`Accept: text/csv`), a consumer's current day and month against its quotas, and the
same for a consumer itself at /v1/usage, with its own key (nobody else's).

The ledger trails the requests by up to `ledger.flush_seconds`; quotas are enforced
on the live counters, not on these figures."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.admin.auth import admin_actor, gateway_app
from gateway.core.errors import InvalidRequest, RouteNotFound
from gateway.core.flow import FLOW
from gateway.core.replies import json_response
from gateway.database.access import DATABASE
from gateway.database.usage import group
from gateway.database.usage_rollups import local_midnight
from gateway.database.values import COUNTS, Counts
from gateway.runtime.live import LIVE
from policies.auth import ConsumerConfig
from policies.ratelimit.quotas import MICROS, QUOTA_FIELDS, QuotasConfig, period


def _when(request: web.Request, name: str, default: datetime.datetime) -> datetime.datetime:
    value = request.query.get(name)
    if not value:
        return default
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an ISO 8601 date or time.", param=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _with_cost(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "cost": row["cost_micros"] / MICROS}


async def report(request: web.Request) -> web.StreamResponse:
    await admin_actor(request)
    now = datetime.datetime.now(datetime.UTC)
    start = _when(request, "from", now - datetime.timedelta(days=30))
    end = _when(request, "to", now)
    by = request.query.get("group_by", "day")
    if by not in ("hour", "day", "month"):
        raise InvalidRequest("group_by is hour, day or month.", param="group_by")
    zone = ZoneInfo(request.config_dict[LIVE].runtime.config.quotas_timezone)
    rows = await request.config_dict[DATABASE].usage.rows(start, end, request.query.get("consumer"),
                                                  request.query.get("deployment"))
    grouped = [_with_cost(r) for r in group(rows, by, zone)]
    totals = Counts()
    for _, _, _, counts in rows:
        totals.add(counts)
    if "text/csv" in request.headers.get("Accept", ""):
        out = io.StringIO()
        writer = csv.writer(out)
        columns = ["consumer", "deployment", "period", *COUNTS, "cost"]
        writer.writerow(columns)
        for row in grouped:
            writer.writerow([row[c] for c in columns])
        return web.Response(text=out.getvalue(), content_type="text/csv")
    return json_response({"object": "usage", "from": start.isoformat(), "to": end.isoformat(),
                 "group_by": by, "data": grouped,
                 "totals": _with_cost(totals.as_dict())})


async def current_usage(app: web.Application, consumers: Sequence[ConsumerConfig]
                        ) -> list[dict[str, Any]]:
    """Each consumer's current day and month beside its quotas, from the usage rollups in
    one read (for one consumer, or for all: the console lists them together)."""
    zone = ZoneInfo(app[LIVE].runtime.config.quotas_timezone)
    now = datetime.datetime.now(datetime.UTC)
    today = now.astimezone(zone).date()
    bounds = [local_midnight(today.replace(day=1), zone), local_midnight(today, zone),
              local_midnight(today + datetime.timedelta(days=1), zone)]
    only = consumers[0].name if len(consumers) == 1 else None
    cells = await app[DATABASE].rollups.series(bounds, ("consumer",), consumer=only)
    out = []
    for consumer in consumers:
        day = cells.get((1, (consumer.name,)), Counts())
        month = Counts()
        month.add(cells.get((0, (consumer.name,)), Counts()))
        month.add(day)
        out.append(_against_quotas(consumer, day, month, now, zone))
    return out


def _against_quotas(consumer: ConsumerConfig, day_used: Counts, month_used: Counts,
                    now: datetime.datetime, zone: ZoneInfo) -> dict[str, Any]:
    month = period("month", now.timestamp(), zone)
    day = period("day", now.timestamp(), zone)
    used = {"day": day_used, "month": month_used}
    quotas = consumer.quotas or QuotasConfig()
    remaining: dict[str, float] = {}
    for name, window in QUOTA_FIELDS.values():
        limit = getattr(quotas, name)
        if limit is None:
            continue
        counts = used[window]
        value: float
        if name.startswith("tokens"):
            value = limit - counts.prompt_tokens - counts.completion_tokens
        elif name.startswith("requests"):
            value = limit - counts.requests
        elif name.startswith("cost"):
            value = round(limit - counts.cost_micros / MICROS, 6)
        else:  # a media unit: images, audio_seconds, characters
            value = limit - getattr(counts, name.rsplit("_per_", 1)[0])
        remaining[name] = max(0, value)
    return {
        "consumer": consumer.name,
        "quotas": quotas.model_dump(exclude_none=True),
        "quotas_by_deployment": {k: v.model_dump(exclude_none=True)
                                 for k, v in consumer.quotas_by_deployment.items()},
        "periods": {
            "day": {"period": day.ident, "resets_at": datetime.datetime.fromtimestamp(day.ends, zone)
                    .isoformat(), **_with_cost(used["day"].as_dict())},
            "month": {"period": month.ident, "resets_at": datetime.datetime.fromtimestamp(
                month.ends, zone).isoformat(), **_with_cost(used["month"].as_dict())},
        },
        "remaining": remaining,
    }


def _consumer(request: web.Request, name: str) -> ConsumerConfig:
    for consumer in request.config_dict[LIVE].runtime.consumers:
        if consumer.name == name:
            return consumer
    raise RouteNotFound(f"No consumer {name}.")


async def consumer_usage(request: web.Request) -> web.Response:
    await admin_actor(request)
    consumer = _consumer(request, request.match_info["name"])
    return json_response((await current_usage(gateway_app(request), [consumer]))[0])


async def own_usage(request: web.Request) -> web.Response:
    """GET /v1/usage: a consumer's own figures, with its own credential."""
    runtime = request.config_dict[LIVE].runtime
    caller = await runtime.authenticator.authenticate(request.headers)
    request[FLOW].consumer = caller.consumer
    own = await current_usage(gateway_app(request), [_consumer(request, caller.consumer)])
    return json_response(own[0])
