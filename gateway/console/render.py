"""Pages from the templates in the package (Jinja2, autoescaped: every value a user or a
consumer controls, from names and metadata to key descriptions and audit details, is
text, never markup). The environment is made on the first page a process serves."""

from __future__ import annotations

import datetime
from typing import Any

import jinja2
from aiohttp import web

from gateway.console import assets
from gateway.console.state import SESSION, ConsoleState, state
from gateway.core.errors import GatewayError, error_code
from gateway.core.flavours import Flavour
from gateway.runtime.live import LIVE
from policies import PolicyError
from policies.ratelimit.quotas import MICROS

NOTHING = "\u2013"  # an en dash: a cell with nothing in it


def _number(value: float | int | None) -> str:
    if value is None:
        return NOTHING
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _money(micros: int | float | None, currency: str = "") -> str:
    if micros is None:
        return NOTHING
    amount = micros / MICROS
    text = f"{amount:,.2f}" if amount >= 1 or amount == 0 else f"{amount:,.6f}".rstrip("0")
    return f"{text} {currency}".strip()


def _amount(value: float) -> str:
    """An amount of money already in the currency (a chart's cell)."""
    if value == 0:
        return "0"
    return f"{value:,.2f}" if value >= 0.01 else f"{value:.6f}".rstrip("0")


def _pairs(values: dict[str, Any] | None) -> str:
    """Limits or quotas as "requests per minute 600; tokens per day 1,000"."""
    kept = [(k, v) for k, v in (values or {}).items() if v is not None]
    return "; ".join(f"{k.replace('_', ' ')} {_number(v) if isinstance(v, int | float) else v}"
                     for k, v in kept) or NOTHING


def when(value: str | float | datetime.datetime | None) -> str:
    """An ISO 8601 time (or epoch seconds) as UTC, to the second."""
    if value is None or value == "":
        return NOTHING
    if isinstance(value, int | float):
        moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
    elif isinstance(value, str):
        moment = datetime.datetime.fromisoformat(value)
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def environment(console: ConsoleState) -> jinja2.Environment:
    if console.templates is None:
        env = jinja2.Environment(
            loader=jinja2.PackageLoader("gateway.console", "templates"),
            autoescape=True,  # every template: all of them are HTML
            undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the page
            auto_reload=False, trim_blocks=True, lstrip_blocks=True)
        env.filters.update(number=_number, money=_money, amount=_amount, pairs=_pairs,
                           when=when)
        env.globals["asset"] = lambda name: assets.url(console, name)
        console.templates = env
    env_: jinja2.Environment = console.templates
    return env_


def currency(request: web.Request) -> str:
    """The currency costs are in: the deployments' pricing (one currency, or none said)."""
    config = request.config_dict[LIVE].runtime.config
    found = {d.pricing.currency for d in config.deployments if d.pricing is not None}
    return found.pop() if len(found) == 1 else ""


def html(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session = request.get(SESSION)
    body = environment(state(request)).get_template(template).render(
        session=session, csrf=session.csrf if session else "", path=request.path,
        currency=currency(request), **context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, exc: GatewayError | PolicyError) -> web.Response:
    """A refusal, as a page: its status, its code and what the error says."""
    response = html(request, "error.html", exc.status, code=error_code(exc, Flavour.OPENAI),
                    message=exc.message, error_status=exc.status)
    extra = exc.extra_headers if isinstance(exc, GatewayError) else exc.headers()
    response.headers.update(extra)
    return response
