"""Deployments, live: each backend's availability, in-flight requests, cooldown, breaker
state and why, last error, and each deployment's limit headroom. The page is rendered
once; its script then fetches the same rows as JSON every few seconds (`live`) and
writes their text into the table, without reloading. Both come from the admin API's
view and are worded here, once."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.admin.auth import gateway_app
from gateway.admin.state import deployments_view
from gateway.console.render import NOTHING, html, when
from gateway.core.replies import json_response

REFRESH_MS = 3000


def _backend(deployment: str, b: dict[str, Any]) -> dict[str, Any]:
    breaker = b["breaker"]
    cooling = b["cooling_down_until"]
    if not b["available"]:
        status = "cooling down" if cooling else ("breaker open" if breaker["state"] != "closed"
                                                 else "unavailable")
    else:
        status = "available"
    error = b["last_error"]
    return {
        "key": f"{deployment}/{b['name']}", "deployment": deployment, "backend": b["name"],
        "tone": "ok" if status == "available" else "bad",
        "cells": {
            "status": status,
            "in_flight": str(b["in_flight"]),
            "cooldown": f"until {when(cooling)}" if cooling else NOTHING,
            "breaker": breaker["state"] + (f" ({breaker['consecutive_failures']} failures)"
                                           if breaker["consecutive_failures"] else ""),
            "why": breaker["opened_because"] or NOTHING,
            "last_error": f"{error['what']} at {when(error['at'])}" if error else NOTHING,
            "spilling": f"until {when(b['spilling_until'])}" if b["spilling_until"] else NOTHING,
        },
    }


def _limits(deployment: dict[str, Any]) -> str:
    limits = deployment.get("limits")
    if limits is None or limits == []:
        return "no limits"
    if isinstance(limits, dict):
        return str(limits.get("error", "unknown"))
    return "; ".join(f"{x['kind']}: {x['remaining']:,.0f} of {x['capacity']:,.0f} left "
                     f"({x['per_minute']:,} a minute)" for x in limits)


async def rows(request: web.Request) -> list[dict[str, Any]]:
    out = []
    for d in await deployments_view(gateway_app(request)):
        out.append({"key": d["name"], "name": d["name"], "model": d["model"],
                    "limits": _limits(d), "backends": [_backend(d["name"], b) for b in d["backends"]]})
    return out


async def page(request: web.Request) -> web.Response:
    return html(request, "deployments.html", deployments=await rows(request), refresh_ms=REFRESH_MS)


async def live(request: web.Request) -> web.Response:
    return json_response({"object": "list", "data": await rows(request)})
