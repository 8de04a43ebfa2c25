"""create_app: middlewares, routes and state set-up, in an explicit order. No logic."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway import admin
from gateway.apis import MODEL_ROUTES
from gateway.config import GatewayConfig
from gateway.console import console_app
from gateway.core.tokens import TOKENIZER, Tokenizer
from gateway.database import database_ctx
from gateway.database.engine import DATABASE
from gateway.enforcement.build import EXTRA_POLICIES
from gateway.enforcement.limiter import limiter_ctx
from gateway.http import catalog, health, middleware, openapi
from gateway.http import stored as stored_responses
from gateway.http.admission import INFLIGHT, InFlight
from gateway.http.connections import CONNECTIONS, Connections
from gateway.http.health import LIFECYCLE, Lifecycle
from gateway.http.inbound import defer_continue
from gateway.http.proxy import model_handler
from gateway.http.routes import MODEL_INFO, MODEL_LISTS, UNSUPPORTED, UNSUPPORTED_PREFIXES
from gateway.ops.accesslog import ACCESS_LOG, AccessLog
from gateway.ops.metrics import METRICS, Metrics
from gateway.ops.telemetry import TELEMETRY, telemetry_ctx
from gateway.runtime.live import LIVE, Live
from gateway.runtime.reload import build_runtime
from gateway.runtime.watch import watch_ctx
from gateway.team.ledger import LEDGER, Ledger, ledger_ctx
from gateway.team.sync import team_ctx
from gateway.upstream.client import SESSION
from gateway.upstream.cooldowns import COOLDOWNS, bus_ctx
from gateway.upstream.credentials import CREDENTIALS, Credentials
from policies import Policy

log = logging.getLogger("gateway")


async def _credentials(app: web.Application) -> AsyncIterator[None]:
    app[CREDENTIALS] = credentials = Credentials()
    app[METRICS].token_fetches = credentials.stats
    yield
    await credentials.close()


async def _session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    # auto_decompress off: bodies pass through as the upstream sent them, and
    # Accept-Encoding is never forwarded, so they arrive uncompressed.
    app[SESSION] = session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        # A cookie one upstream sets (an affinity cookie, say) must not ride along on
        # other consumers' calls: the gateway keeps none.
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    yield
    await session.close()


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    app[LIVE].runtime = build_runtime(app, app[LIVE].config)

    # Both read the snapshot live at the time, so that a reload is seen.
    def backends() -> list[tuple[str, str, bool, bool, bool]]:
        now = time.monotonic()
        return [(d.name, b.name, b.health.available(now), b.health.state(now) != "closed",
                 now < b.health.cooldown_until)
                for d in app[LIVE].runtime.deployments.values() for b in d.backends]

    def limits() -> list[tuple[str, str, float]]:
        out = []
        for d in app[LIVE].config.deployments:
            if d.limits is not None:
                for kind in ("requests", "tokens"):
                    value = getattr(d.limits, f"{kind}_per_minute")
                    if value:
                        out.append((d.name, kind, float(value)))
        return out

    def apply(deployment: str, backend: str, seconds: float) -> None:
        target = app[LIVE].runtime.deployments.get(deployment)
        for b in target.backends if target is not None else ():
            if b.name == backend:
                b.health.cool_down(seconds, "HTTP 429, seen by another replica")

    app[METRICS].backends = backends
    app[METRICS].configured_limits = limits
    app[METRICS].config_version = lambda: app[LIVE].version
    app[COOLDOWNS].start(apply)
    preload = None
    if app[LIVE].config.server.preload_tokenizer:
        # In a thread, so that start-up does not wait for it.
        preload = asyncio.get_running_loop().create_task(app[TOKENIZER].preload())
    app[LIFECYCLE].ready = True
    yield
    app[LIFECYCLE].ready = False
    if preload is not None and not preload.done():
        await asyncio.wait([preload], timeout=5)


def _ledger(app: web.Application) -> Ledger | None:
    config = app[LIVE].config.ledger
    if not config.enabled:
        return None
    # Spools are replayed into the database of whoever finds them: one folder per
    # database, so that two gateways on one host never mix their ledgers.
    url = hashlib.sha256(app[LIVE].config.database.url.encode()).hexdigest()[:16]
    folder = (config.spool_dir or Path(tempfile.gettempdir()) / "model-gateway-ledger") / url
    return Ledger(app[DATABASE].usage, folder, time.time)


def create_app(
    config: GatewayConfig,
    policies: Sequence[Policy] = (),
    access_log: AccessLog | None = None,
    config_path: Path | None = None,
) -> web.Application:
    """`config_path`: the file `config` was read from, watched and reloaded."""
    app = web.Application(
        middlewares=[middleware.exchange], client_max_size=config.server.max_body_bytes
    )
    app[LIVE] = Live(config, config_path)
    app[METRICS] = Metrics()
    app[LIFECYCLE] = Lifecycle()
    app[ACCESS_LOG] = access_log or AccessLog()
    app[EXTRA_POLICIES] = tuple(policies)
    app[TOKENIZER] = Tokenizer()
    app[INFLIGHT] = InFlight()
    server = config.server
    app[CONNECTIONS] = Connections(server.header_timeout_seconds, server.max_connections)
    app.cleanup_ctx.extend([
        telemetry_ctx(TELEMETRY), _credentials, _session,
        database_ctx(DATABASE, lambda a: a[LIVE].config), team_ctx,
        ledger_ctx(LEDGER, _ledger), limiter_ctx(lambda a: a[LIVE].config),
        bus_ctx(lambda a: a[LIVE].config.redis.url, COOLDOWNS),
        _runtime, watch_ctx,
    ])
    app.on_response_prepare.append(middleware.request_id_headers)

    router = app.router
    for route in MODEL_ROUTES:
        router.add_post(route.path, model_handler(route), expect_handler=defer_continue)
    for path in MODEL_LISTS:
        router.add_get(path, catalog.list_models)
        router.add_get(path + "/{model}", catalog.get_model)
    stored_responses.add_routes(router)
    admin.add_routes(router)
    router.add_get(MODEL_INFO, catalog.model_info)
    surfaces = "|".join(UNSUPPORTED)
    for prefix in UNSUPPORTED_PREFIXES:
        router.add_route("*", prefix + "/{surface:(" + surfaces + ")}{rest:(/.*)?}", catalog.unsupported)
    router.add_get("/openapi.json", openapi.handle)
    router.add_get("/healthz", health.healthz)
    router.add_get("/readyz", health.readyz)
    router.add_get("/metrics", app[METRICS].handle)
    app.add_subapp("/ui", console_app())  # the console: on the admin API's listener, by its rule
    return app
