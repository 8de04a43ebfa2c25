"""Usage and spend: cost and tokens per period, stacked by deployment or consumer, with
the table of each chart and its CSV; and each consumer's quota use against its limits.
Two reads of the rollups per page: the range, and the consumers' current day and month."""

from __future__ import annotations

import csv as csvlib
import datetime
import io
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.admin.auth import gateway_app
from gateway.admin.usage import current_usage
from gateway.console.charts import Series, periods, stacked
from gateway.console.forms import UsageQuery, read
from gateway.console.guard import redirect
from gateway.console.render import html
from gateway.core.errors import InvalidRequest
from gateway.database.access import DATABASE
from gateway.runtime.live import LIVE

# Bounds on what one page sums: a day per bar for up to three months, a month per bar
# for up to three years.
MAX_PERIODS = {"day": 93, "month": 36}


def _month(text: str | None, default: datetime.date) -> datetime.date:
    if text is None:
        return default
    try:
        return datetime.date.fromisoformat(text + "-01")
    except ValueError:
        raise InvalidRequest(f"'{text}' is not a month (YYYY-MM).", param="from") from None


async def _series(request: web.Request, query: UsageQuery) -> tuple[Series, str, str]:
    config = request.config_dict[LIVE].runtime.config
    zone = ZoneInfo(config.quotas_timezone)
    this_month = datetime.datetime.now(zone).date().replace(day=1)
    first = _month(query.start, this_month)
    last = _month(query.end, first)
    if last < first:
        raise InvalidRequest("The range ends before it starts.", param="to")
    labels, bounds = periods(first, last, query.by, zone)
    if len(labels) > MAX_PERIODS[query.by]:
        raise InvalidRequest(f"At most {MAX_PERIODS[query.by]} bars a chart: choose a shorter "
                             "range or months.", param="to")
    cells = await request.config_dict[DATABASE].rollups.series(
        bounds, (query.stack,), consumer=query.consumer, deployment=query.deployment)
    return stacked(cells, labels), first.strftime("%Y-%m"), last.strftime("%Y-%m")


async def home(request: web.Request) -> web.Response:
    return redirect("/ui/usage")


async def page(request: web.Request) -> web.Response:
    query = read(UsageQuery, request.query)
    runtime = request.config_dict[LIVE].runtime
    error = None
    try:
        series, first, last = await _series(request, query)
    except InvalidRequest as exc:
        error, series = exc.message, stacked({}, [])
        first = last = ""
    wanted = [c for c in runtime.consumers
              if (c.quotas is not None or c.quotas_by_deployment)
              and query.consumer in (None, c.name)]
    quotas = await current_usage(gateway_app(request), wanted) if wanted else []
    return html(request, "usage.html", 400 if error else 200, error=error, query=query,
                first=first, last=last, series=series, quotas=quotas,
                consumers=sorted(c.name for c in runtime.consumers),
                deployments=sorted(runtime.deployments),
                csv_href="/ui/usage.csv?" + _query(query, first, last),
                quota_rows=_quota_rows(quotas))


def _query(query: UsageQuery, first: str, last: str) -> str:
    """The page's filters as a query string (for its CSV): what was read, not what was sent."""
    fields = {"from": first, "to": last, "by": query.by, "stack": query.stack,
              "consumer": query.consumer, "deployment": query.deployment}
    return urlencode({k: v for k, v in fields.items() if v})


def _quota_rows(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per quota of each consumer: used, limit and when it resets."""
    rows = []
    for entry in current:
        for name, limit in entry["quotas"].items():
            window = "day" if name.endswith("_day") else "month"
            used_in = entry["periods"][window]
            if name.startswith("tokens"):
                used: float = used_in["prompt_tokens"] + used_in["completion_tokens"]
            elif name.startswith("requests"):
                used = used_in["requests"]
            elif name.startswith("cost"):
                used = used_in["cost"]
            else:  # a media unit: images, audio_seconds, characters
                used = used_in[name.rsplit("_per_", 1)[0]]
            rows.append({"consumer": entry["consumer"], "quota": name, "used": used,
                         "limit": limit, "share": min(1.0, used / limit) if limit else 0.0,
                         "resets_at": used_in["resets_at"], "cost": name.startswith("cost")})
    return rows


def _cell(text: str) -> str:
    """A name a spreadsheet would take for a formula, quoted as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


async def csv(request: web.Request) -> web.Response:
    """Exactly the cells the page's charts and tables show, for the same query."""
    query = read(UsageQuery, request.query)
    series, first, last = await _series(request, query)
    out = io.StringIO()
    writer = csvlib.writer(out)
    writer.writerow(["period", query.stack, "cost", "tokens"])
    for period, stack, cost, tokens in series.rows():
        writer.writerow([period, _cell(stack), f"{cost:.6f}", int(tokens)])
    name = f"usage-{first}-{last}-by-{query.by}-{query.stack}.csv"
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
