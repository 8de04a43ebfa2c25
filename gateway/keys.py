"""Every AppKey and RequestKey of the gateway, in one place."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.admission import InFlight
from gateway.config import GatewayConfig
from gateway.connections import Connections
from gateway.cooldown_bus import CooldownBus
from gateway.credentials import Credentials
from gateway.database import Database
from gateway.database.team import Snapshot
from gateway.exchange import Exchange
from gateway.ledger import Ledger
from gateway.limiter import Limiter
from gateway.metrics import Metrics
from gateway.runtime import Runtime
from gateway.telemetry import Telemetry
from gateway.tokens import Tokenizer
from policies import RequestContext


@dataclass(slots=True)
class TeamState:
    """The latest consumers and keys read from the database (None: not read yet)."""

    snapshot: Snapshot | None = None


@dataclass(slots=True)
class Lifecycle:
    ready: bool = False
    draining: bool = False


class Live:
    """The config in force and the runtime built from it. Both are replaced whole on a
    reload or a team change; they live in this holder because an app's own state is
    frozen once it runs."""

    __slots__ = ("config", "current", "last_reload", "loaded_at", "path", "version")

    def __init__(self, config: GatewayConfig, path: Path | None = None) -> None:
        self.config = config
        self.current: Runtime | None = None  # None until start-up built it
        self.path = path  # the file it came from, watched and reloaded (None: given in code)
        self.version = config_version(path)
        self.loaded_at = time.time()
        self.last_reload: dict[str, Any] | None = None  # {"at", "result", "error"?}

    @property
    def runtime(self) -> Runtime:
        if self.current is None:
            raise LookupError("the runtime is not built yet")
        return self.current

    @runtime.setter
    def runtime(self, runtime: Runtime) -> None:
        self.current = runtime


def config_version(path: Path | None) -> str:
    """What names a config in metrics, logs and the admin API: the first 12 hex digits of
    its file's SHA-256 ("inline" for a config given in code)."""
    if path is None:
        return "inline"
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "unreadable"


LIVE = web.AppKey("live", Live)
SESSION = web.AppKey("session", aiohttp.ClientSession)
CREDENTIALS = web.AppKey("credentials", Credentials)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
LIMITER = web.AppKey("limiter", Limiter)  # rate-limit store; outlives reloads
COOLDOWNS = web.AppKey("cooldowns", CooldownBus)  # backend cooldowns shared via Redis
EXTRA_POLICIES = web.AppKey("extra_policies", tuple)  # given to create_app, kept on reload
TEAM = web.AppKey("team", TeamState)  # consumers and keys from the database, kept current
DATABASE = web.AppKey("database", Database)  # what must last: stored-response owners, ...
LEDGER = web.AppKey("ledger", Ledger)  # settled usage on its way to the database
INFLIGHT = web.AppKey("inflight", InFlight)  # model requests being served, against their caps
CONNECTIONS = web.AppKey("connections", Connections)  # set by server.start for a gateway listener
TOKENIZER = web.AppKey("tokenizer", Tokenizer)  # counts what upstreams did not count
TELEMETRY = web.AppKey("telemetry", Telemetry)  # set only when OpenTelemetry is on
EXCHANGE = web.RequestKey("exchange", Exchange)
CONTEXT = web.RequestKey("context", RequestContext)  # set once the deployment is known
