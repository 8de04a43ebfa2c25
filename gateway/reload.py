"""Building the live `Runtime` from a config, at start-up and on reload (SIGHUP).

A reload swaps the snapshot whole; a config that does not validate, or that
would need a restart (another Redis, limits where there was no limit store),
keeps the previous one and says why. Requests in flight finish on the snapshot
they started with."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from gateway.backends import SecretMissing
from gateway.config import ConfigError, GatewayConfig, load
from gateway.credentials import CredentialUnavailable
from gateway.database.team import Snapshot
from gateway.enforcement import build_policies
from gateway.keys import CREDENTIALS, EXTRA_POLICIES, LIMITER, LIVE, METRICS, SESSION, TEAM
from gateway.runtime import Runtime
from gateway.services import GatewayServices
from policies.auth import ConsumerConfig, RuntimeKey
from policies.auth.entra import FetchJson

log = logging.getLogger("gateway.reload")


class StartupError(Exception):
    """The gateway cannot run with this config (a missing secret, say)."""


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
    snapshot = app[TEAM].snapshot
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


def reload(app: web.Application, path: Path) -> bool:
    """Swap in the config at `path`; False (and the old config kept) if it cannot be used."""
    old = app[LIVE].config
    try:
        new = load(path)
        if (new.redis.url, new.redis.cluster) != (old.redis.url, old.redis.cluster) or (
            new.has_limits and app[LIMITER].store is None
        ):
            raise ConfigError("redis settings, or rate limits where there were none, need a restart")
        runtime = build_runtime(app, new)
    except (ConfigError, StartupError) as exc:
        log.error("reload of %s refused, the previous config stays: %s", path, exc)
        return False
    if new.server != old.server:
        log.warning("server settings change only at the next restart")
    app[LIVE].runtime = runtime
    app[LIVE].config = new
    log.info("reloaded %s: %d deployments, %d consumers", path, len(new.deployments),
             len(new.consumers))
    return True
