"""Every route the gateway serves, in one table: the model routes (one per adapter route,
`gateway.apis`), the image and audio routes (`gateway.http.media`), the catalog, stored
responses, operations, and the admin API, which `gateway.app` mounts as a sub-application
of its own at `/admin/v1` (its own router, the parent's middleware and response headers).
Order matters only where patterns could overlap: model routes come before the catch-all
of unsupported surfaces."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.apis import MEDIA_ROUTES, MODEL_ROUTES
from gateway.core.errors import UnsupportedOperation
from gateway.core.flow import FLOW
from gateway.database.access import DATABASE
from gateway.http import catalog, health, openapi, stored
from gateway.http.inbound import defer_continue
from gateway.http.media import media_handler
from gateway.http.proxy import model_handler
from gateway.ops.metrics import metrics_handler
from gateway.runtime.live import LIVE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_PREFIX = "/admin/v1"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    # 100-continue waits for the handler (after authentication) on routes with a body.
    expect_handler: Callable[[web.Request], Awaitable[None]] | None = None


async def own_usage(request: web.Request) -> web.StreamResponse:
    """GET /v1/usage, read from the ledger's rollups: with a database only, and its
    module (SQLAlchemy's queries) imported on the first call."""
    if DATABASE not in request.app:
        caller = await request.app[LIVE].runtime.authenticator.authenticate(request.headers)
        request[FLOW].consumer = caller.consumer
        raise UnsupportedOperation("Usage is read from the ledger, and this gateway keeps none "
                                   "(database.enabled is false).")
    from gateway.admin import usage

    return await usage.own_usage(request)


def _gateway() -> list[Route]:
    routes = [Route("POST", r.path, model_handler(r), defer_continue) for r in MODEL_ROUTES]
    routes += [Route("POST", r.path, media_handler(r), defer_continue) for r in MEDIA_ROUTES]
    for path in catalog.MODEL_LISTS:
        routes += [Route("GET", path, catalog.list_models),
                   Route("GET", path + "/{model}", catalog.get_model)]
    for prefix in stored.PREFIXES:
        base = prefix + "/responses/{response_id}"
        routes += [Route("GET", base, stored.retrieve), Route("DELETE", base, stored.delete),
                   Route("GET", base + "/input_items", stored.input_items),
                   Route("POST", base + "/cancel", stored.cancel)]
    routes += [Route("GET", catalog.MODEL_INFO, catalog.model_info),
               Route("GET", "/v1/usage", own_usage)]
    surfaces = "|".join(catalog.UNSUPPORTED)
    routes += [Route("*", prefix + "/{surface:(" + surfaces + ")}{rest:(/.*)?}", catalog.unsupported)
               for prefix in catalog.UNSUPPORTED_PREFIXES]
    routes += [Route("GET", "/openapi.json", openapi.handle),
               Route("GET", "/healthz", health.healthz),
               Route("GET", "/readyz", health.readyz),
               Route("GET", "/metrics", metrics_handler)]
    return routes


def admin() -> list[Route]:
    """The admin API's routes, relative to ADMIN_PREFIX: imported only for a gateway
    with a database (the admin API needs one; without it the config refuses it)."""
    from gateway.admin import consumers, state, usage

    return [
        Route("POST", "/consumers", consumers.create),
        Route("GET", "/consumers", consumers.listing),
        Route("GET", "/consumers/{name}", consumers.one),
        Route("PATCH", "/consumers/{name}", consumers.patch),
        Route("DELETE", "/consumers/{name}", consumers.remove),
        Route("POST", "/consumers/{name}/keys", consumers.create_key),
        Route("GET", "/consumers/{name}/keys", consumers.keys),
        Route("DELETE", "/consumers/{name}/keys/{key_id}", consumers.revoke),
        Route("GET", "/consumers/{name}/usage", usage.consumer_usage),
        Route("GET", "/audit", consumers.audit),
        Route("GET", "/usage", usage.report),
        Route("GET", "/deployments", state.deployments),
        Route("GET", "/config", state.config),
        Route("POST", "/reload", state.reload_now),
    ]


def admin_off() -> list[Route]:
    """Without a database there is no admin API: every path under ADMIN_PREFIX gets the
    404 that says so, as the admin API's own routes do when it is not configured."""
    from gateway.admin.auth import admin_listener

    async def off(request: web.Request) -> web.StreamResponse:
        admin_listener(request)  # raises: the config refuses the admin API without a database
        raise web.HTTPNotFound()

    return [Route("*", "/{tail:.*}", off)]


GATEWAY = _gateway()


def add(router: web.UrlDispatcher, routes: list[Route]) -> None:
    for route in routes:
        router.add_route(route.method, route.path, route.handler,
                         expect_handler=route.expect_handler)
