"""Consumers: the list (the config file's, read-only, and the database's, by name, a page
at a time), one consumer with its keys, and the forms that create, edit and delete one.
Every change is the admin API's own function, recorded under the signed-in actor."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.admin.auth import gateway_app
from gateway.admin.consumers import add_consumer, change_consumer, config_view, remove_consumer, stored_view
from gateway.console.forms import ConsumerForm, Cursor, read
from gateway.console.guard import redirect
from gateway.console.render import html
from gateway.console.state import SESSION
from gateway.core.errors import Conflict, InvalidRequest, RouteNotFound
from gateway.database.access import DATABASE
from gateway.runtime.live import LIVE

PAGE = 50
KEYS_PAGE = 20
DONE = {"created": "Consumer created.", "saved": "Changes saved.", "deleted": "Consumer deleted.",
        "revoked": "Key revoked."}


def done(request: web.Request) -> str | None:
    """A fixed message for what the last form did (never text from the query string)."""
    return DONE.get(request.query.get("done", ""))


def link(name: str) -> str:
    return "/ui/consumers/" + quote(name, safe="")


async def listing(request: web.Request) -> web.Response:
    after = read(Cursor, request.query).after
    config = request.config_dict[LIVE].runtime.config
    from_config = sorted((config_view(c) for c in config.consumers
                          if after is None or c.name > after), key=lambda v: v["name"])
    stored = await request.config_dict[DATABASE].team.consumers_after(after, PAGE + 1)
    merged = sorted([*from_config[:PAGE + 1], *(stored_view(c) for c in stored)],
                    key=lambda v: v["name"])
    rows = merged[:PAGE]
    more = rows[-1]["name"] if len(merged) > PAGE else None
    return html(request, "consumers.html", consumers=rows, after=after, more=more,
                done=done(request))


def _entra_on(request: web.Request) -> bool:
    return request.config_dict[LIVE].runtime.config.auth.entra is not None


def _deployments(request: web.Request) -> list[str]:
    return ["*", *sorted(request.config_dict[LIVE].runtime.deployments)]


def form_values(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored consumer as the form's fields."""
    limits, quotas, entra = spec.get("limits") or {}, spec.get("quotas") or {}, spec.get("entra") or {}
    values: dict[str, Any] = {
        "deployments": list(spec.get("deployments") or []),
        "max_inflight": spec.get("max_inflight"),
        "metadata": "\n".join(f"{k}={v}" for k, v in (spec.get("metadata") or {}).items()),
        "limits_by_deployment": json.dumps(spec["limits_by_deployment"], indent=1)
        if spec.get("limits_by_deployment") else "",
        "quotas_by_deployment": json.dumps(spec["quotas_by_deployment"], indent=1)
        if spec.get("quotas_by_deployment") else "",
        **{f"entra_{k}": "\n".join(entra.get(k) or []) for k in ("object_ids", "app_ids", "groups",
                                                                 "roles")},
    }
    values.update({k: limits.get(k) for k in ("requests_per_minute", "tokens_per_minute")})
    values.update({k: quotas.get(k) for k in ("tokens_per_day", "tokens_per_month",
                                              "requests_per_day", "cost_per_month")})
    return {k: ("" if v is None else v) for k, v in values.items()}


def _raw(form: Any) -> dict[str, Any]:
    """What was typed, to show again with the error."""
    values: dict[str, Any] = {k: form.get(k, "") for k in form}
    values["deployments"] = form.getall("deployments", [])
    return values


def _form(request: web.Request, values: dict[str, Any], *, name: str | None = None,
          error: str | None = None, status: int = 200) -> web.Response:
    return html(request, "consumer_form.html", status, values=values, name=name, error=error,
                all_deployments=_deployments(request), entra=_entra_on(request))


async def new(request: web.Request) -> web.Response:
    return _form(request, {"name": "", **form_values({"deployments": []})})


async def create(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        parsed = read(ConsumerForm, form, lists=("deployments",))
        made = await add_consumer(gateway_app(request), request[SESSION].actor, parsed.body())
    except (InvalidRequest, Conflict) as exc:
        return _form(request, _raw(form), error=exc.message, status=exc.status)
    return redirect(link(made["name"]) + "?done=created")


async def _find(request: web.Request, name: str) -> dict[str, Any]:
    for consumer in request.config_dict[LIVE].runtime.config.consumers:
        if consumer.name == name:
            return config_view(consumer)
    stored = await request.config_dict[DATABASE].team.consumer(name)
    if stored is None:
        raise RouteNotFound(f"No consumer {name}.")
    return stored_view(stored)


async def detail(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    view = await _find(request, name)
    before = read(Cursor, request.query).before
    keys = []
    if view["source"] == "database":
        listed = await request.config_dict[DATABASE].team.keys_before(name, before, KEYS_PAGE + 1)
        keys = [k.public() for k in listed]
    more = keys[KEYS_PAGE - 1]["id"] if len(keys) > KEYS_PAGE else None
    return html(request, "consumer.html", consumer=view, keys=keys[:KEYS_PAGE], more=more,
                before=before, values=form_values(view), all_deployments=_deployments(request),
                entra=_entra_on(request), done=done(request), link=link(name))


async def update(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    view = await _find(request, name)
    form = await request.post()
    try:
        if view.get("read_only"):
            raise Conflict(f"Consumer {name} is defined in the config file: change it there.")
        parsed = read(ConsumerForm, form, lists=("deployments",))
        body = parsed.body(view)
        body.pop("name", None)
        await change_consumer(gateway_app(request), request[SESSION].actor, name, body)
    except (InvalidRequest, Conflict) as exc:
        return _form(request, _raw(form), name=name, error=exc.message, status=exc.status)
    return redirect(link(name) + "?done=saved")


async def confirm_delete(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    view = await _find(request, name)
    return html(request, "confirm.html", title=f"Delete consumer {name}?",
                question=f"Delete consumer {name} and all of its keys? Callers using them "
                         "are refused from then on.",
                action=link(name) + "/delete", button="Delete consumer", back=link(name),
                read_only=bool(view.get("read_only")))


async def delete(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    # A refusal (a config-file consumer, one already gone) is the guard's error page.
    await remove_consumer(gateway_app(request), request[SESSION].actor, name)
    return redirect("/ui/consumers?done=deleted")
