"""Building the live `Runtime` from a config, at start-up and on reload (SIGHUP, a
changed file, POST /admin/v1/reload).

A reload swaps the snapshot whole; a config that does not validate, or that
would need a restart (another Redis, limits where there was no limit store),
keeps the previous one and says why. Requests in flight finish on the snapshot
they started with."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from gateway.config import ConfigError, GatewayConfig, StartupError, load
from gateway.core.tokens import TOKENIZER
from gateway.enforcement.build import EXTRA_POLICIES, build_policies
from gateway.enforcement.limiter import LIMITER
from gateway.enforcement.services import GatewayServices
from gateway.ops.metrics import METRICS
from gateway.runtime.live import LIFECYCLE, LIVE, config_version
from gateway.runtime.snapshot import Runtime
from gateway.upstream.backends import SecretMissing
from gateway.upstream.client import SESSION
from gateway.upstream.cooldowns import COOLDOWNS
from gateway.upstream.credentials import CREDENTIALS, CredentialUnavailable
from policies.auth import ConsumerConfig, RuntimeKey
from policies.auth.entra import FetchJson

if TYPE_CHECKING:
    from gateway.database.team import Snapshot


log = logging.getLogger("gateway.runtime.reload")


def _fetcher(session: aiohttp.ClientSession) -> FetchJson:
    async def fetch_json(url: str) -> object:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
            response.raise_for_status()
            return await response.json(content_type=None)

    return fetch_json


def merged_consumers(config: GatewayConfig, snapshot: Snapshot | None
                     ) -> tuple[list[ConsumerConfig], list[RuntimeKey]]:
    """The config's consumers and the database's (a name in both stays the config's), and
    the keys issued at runtime."""
    consumers = list(config.consumers)
    if snapshot is None:
        return consumers, []
    names = {c.name for c in consumers}
    for stored in snapshot.consumers:
        if stored.name in names:
            log.warning("consumer %s is in the config and in the database: the config's wins",
                        stored.name)
            continue
        try:
            consumers.append(ConsumerConfig(name=stored.name, **stored.spec))
        except ValidationError as exc:
            log.error("consumer %s in the database is not valid here and is left out: %s",
                      stored.name, exc.errors()[0]["msg"])
    keys = [RuntimeKey(k.digest, k.consumer, k.expires_at.timestamp() if k.expires_at else None)
            for k in snapshot.keys]
    return consumers, keys


def build_runtime(app: web.Application, config: GatewayConfig) -> Runtime:
    snapshot = app[LIVE].team
    consumers, keys = merged_consumers(config, snapshot)
    try:
        services = GatewayServices(app[SESSION], app[CREDENTIALS])
        policies = [*build_policies(config, app[LIMITER], app[METRICS].content, services,
                                    consumers),
                    *app[EXTRA_POLICIES]]
        return Runtime(config, app[CREDENTIALS], policies, _fetcher(app[SESSION]), consumers, keys,
                       app[LIVE].current, snapshot.version if snapshot else 0)
    except (SecretMissing, CredentialUnavailable) as exc:
        raise StartupError(str(exc)) from None
    except (ImportError, AttributeError, TypeError, OSError) as exc:
        # A custom hook that cannot be imported, or a blocklist file that cannot be read.
        raise StartupError(f"content filter: {exc}") from None


def rebuild(app: web.Application) -> None:
    """The runtime built again from the running config (a team change), once start-up
    built the first."""
    live = app[LIVE]
    if live.current is not None:
        live.runtime = build_runtime(app, live.config)


def reload(app: web.Application, path: Path | None = None) -> bool:
    """Swap in the config at `path` (default: the file the running one came from); False,
    and the old config kept, if it cannot be used. Requests in flight finish on the
    runtime they started with; rate-limit buckets (in their store), backends' cooldowns and
    breakers (carried over by name) survive for whatever did not change."""
    live = app[LIVE]
    path = path or live.path
    if path is None:
        raise ConfigError("this gateway's config was not read from a file: nothing to reload")
    old = live.config
    try:
        new = load(path)
        if (new.redis.url, new.redis.cluster) != (old.redis.url, old.redis.cluster) or (
            new.has_limits and app[LIMITER].store is None
        ):
            raise ConfigError("redis settings, or rate limits where there were none, need a restart")
        if new.database.enabled != old.database.enabled:
            raise ConfigError("database.enabled changes only at a restart")
        runtime = build_runtime(app, new)
    except (ConfigError, StartupError) as exc:
        log.error("reload of %s refused, the previous config (version %s) stays: %s", path,
                  live.version, exc)
        _done(app, "error", str(exc))
        return False
    if new.server != old.server:
        log.warning("server settings change only at the next restart")
    live.config, live.runtime = new, runtime
    live.path, live.version, live.loaded_at = path, config_version(path), time.time()
    log.info("reloaded %s (version %s): %d deployments, %d consumers", path, live.version,
             len(new.deployments), len(new.consumers))
    _done(app, "ok")
    return True


def _done(app: web.Application, result: str, error: str | None = None) -> None:
    app[METRICS].config_reloads.inc((result,))
    app[LIVE].last_reload = {"at": time.time(), "result": result,
                             **({"error": error} if error else {})}


async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    """The first runtime, once what it is built from is ready; what reads the live one
    (metrics at scrape time, cooldowns from other replicas) wired to it; then ready."""
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
        tokenizer = app[TOKENIZER]
        names = {d.encoding for d in app[LIVE].runtime.deployments.values()}
        preload = asyncio.get_running_loop().create_task(
            _preload(tokenizer.preload(n) for n in names))
    app[LIFECYCLE].ready = True
    yield
    app[LIFECYCLE].ready = False
    if preload is not None and not preload.done():
        await asyncio.wait([preload], timeout=5)


async def _preload(loads: Iterable[Awaitable[None]]) -> None:
    await asyncio.gather(*loads)
