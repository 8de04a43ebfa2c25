"""The console (/ui/): web pages for the people who run the gateway: usage and spend,
consumers and keys, the deployments' live state, the config and the audit trail.

An aiohttp sub-application, mounted by `gateway.app` under /ui on the admin API's
listener and by its rule (admin.port when set; 404 when the admin API is off). Every
read and change goes through the admin API's own functions and the database layer.
Jinja2, the page modules and their form models are imported on the first /ui request
(`_lazy`), so that an idle gateway with the console enabled pays next to nothing.

May import: core, config, database, upstream, runtime, team, http, admin."""

from __future__ import annotations

import importlib

from aiohttp import web

from gateway.console import guard
from gateway.console.state import CONSOLE, ConsoleState, Handler


def _lazy(module: str, name: str) -> Handler:
    """A handler that imports its page module when first called."""

    async def handler(request: web.Request) -> web.StreamResponse:
        page = importlib.import_module(f"gateway.console.{module}")
        found: Handler = getattr(page, name)
        return await found(request)

    return handler


def console_app() -> web.Application:
    app = web.Application(middlewares=[guard.frame])
    app[CONSOLE] = ConsoleState()
    app.on_response_prepare.append(guard.headers)
    r = app.router
    r.add_get("/", _lazy("usage_page", "home"))
    r.add_get("/login", _lazy("login", "form"))
    r.add_post("/login", _lazy("login", "submit"))
    r.add_post("/logout", _lazy("login", "logout"))
    r.add_get("/login/entra", _lazy("entra_login", "start"))
    r.add_get("/login/entra/callback", _lazy("entra_login", "callback"))
    r.add_get("/usage", _lazy("usage_page", "page"))
    r.add_get("/usage.csv", _lazy("usage_page", "csv"))
    r.add_get("/consumers", _lazy("consumers_page", "listing"))
    r.add_get("/consumers/new", _lazy("consumers_page", "new"))
    r.add_post("/consumers", _lazy("consumers_page", "create"))
    r.add_get("/consumers/{name}", _lazy("consumers_page", "detail"))
    r.add_post("/consumers/{name}", _lazy("consumers_page", "update"))
    r.add_get("/consumers/{name}/delete", _lazy("consumers_page", "confirm_delete"))
    r.add_post("/consumers/{name}/delete", _lazy("consumers_page", "delete"))
    r.add_post("/consumers/{name}/keys", _lazy("keys_page", "issue"))
    r.add_get("/consumers/{name}/keys/{key_id}/revoke", _lazy("keys_page", "confirm_revoke"))
    r.add_post("/consumers/{name}/keys/{key_id}/revoke", _lazy("keys_page", "revoke"))
    r.add_get("/deployments", _lazy("deployments_page", "page"))
    r.add_get("/deployments.json", _lazy("deployments_page", "live"))
    r.add_get("/config", _lazy("config_page", "page"))
    r.add_post("/reload", _lazy("config_page", "reload"))
    r.add_get("/static/{name}", _lazy("assets", "asset"))
    return app


__all__ = ["CONSOLE", "ConsoleState", "console_app"]
