"""create_app: the app's state, its start-up and shutdown steps in their order, its
middleware and its routes (`gateway.routes`), with the admin API as a sub-application.
Assembly only: what each step does lives in the module that owns it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway import routes
from gateway.config import GatewayConfig
from gateway.console import console_app
from gateway.core.tokens import TOKENIZER, Tokenizer
from gateway.database.access import DATABASE
from gateway.enforcement.build import EXTRA_POLICIES
from gateway.enforcement.limiter import limiter_ctx
from gateway.http import middleware
from gateway.http.admission import INFLIGHT, InFlight
from gateway.http.connections import CONNECTIONS, Connections
from gateway.ops.accesslog import ACCESS_LOG, AccessLog
from gateway.ops.metrics import METRICS, Metrics
from gateway.ops.telemetry import TELEMETRY, telemetry_ctx
from gateway.runtime.live import LIFECYCLE, LIVE, Lifecycle, Live
from gateway.runtime.reload import runtime_ctx
from gateway.runtime.watch import watch_ctx
from gateway.team.ledger import LEDGER, ledger_ctx, make_ledger
from gateway.team.sync import team_ctx
from gateway.upstream.client import session_ctx
from gateway.upstream.cooldowns import COOLDOWNS, bus_ctx
from gateway.upstream.credentials import credentials_ctx
from policies import Policy


def create_app(
    config: GatewayConfig,
    policies: Sequence[Policy] = (),
    access_log: AccessLog | None = None,
    config_path: Path | None = None,
) -> web.Application:
    """`policies`: added after the config's (kept on reload); `config_path`: the file
    `config` was read from, watched and reloaded."""
    app = web.Application(
        middlewares=[middleware.flow], client_max_size=config.server.max_body_bytes
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

    def config_of(a: web.Application) -> GatewayConfig:
        return a[LIVE].config

    # Without a database (the sidecar) there is no team to read and no ledger (the config
    # refuses one), and nothing that needs SQLAlchemy is imported.
    with_database = config.database.enabled
    database: list[Any] = []
    if with_database:
        from gateway.database.engine import database_ctx

        database = [database_ctx(DATABASE, config_of), team_ctx]
    # Start-up in this order, shutdown in reverse: each step needs those before it (the
    # runtime needs credentials, the session, the team and the limiter; the watcher, a
    # runtime to replace).
    app.cleanup_ctx.extend([
        telemetry_ctx(TELEMETRY), credentials_ctx, session_ctx, *database,
        ledger_ctx(LEDGER, make_ledger), limiter_ctx(config_of),
        bus_ctx(lambda a: a[LIVE].config.redis.url, COOLDOWNS),
        runtime_ctx, watch_ctx,
    ])
    app.on_response_prepare.append(middleware.request_id_headers)

    routes.add(app.router, routes.GATEWAY)
    admin = web.Application()
    routes.add(admin.router, routes.admin() if with_database else routes.admin_off())
    app.add_subapp(routes.ADMIN_PREFIX, admin)
    app.add_subapp("/ui", console_app())
    return app
