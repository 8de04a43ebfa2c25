"""The running gateway's state, read-only: each deployment's backends (available,
cooling down until, breaker state and why, in flight, last error), its rate limits'
headroom now, and the running config (version, a redacted view); and a reload on demand.
Times are wall-clock ISO 8601; the health module keeps monotonic ones."""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

from aiohttp import web

from gateway.admin.auth import admin_actor, gateway_app
from gateway.config import ConfigError, GatewayConfig, dump_public
from gateway.core.errors import Conflict
from gateway.core.redis_client import redacted
from gateway.core.replies import json_response
from gateway.runtime.live import LIVE
from gateway.runtime.reload import reload
from gateway.upstream.backends import Backend
from policies.ratelimit import RateLimitPolicy
from policies.ratelimit.buckets import StoreError

log = logging.getLogger("gateway.runtime.reload")


def _iso(epoch: float) -> str | None:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat() if epoch else None


def _wall(monotonic_at: float, now: float) -> str | None:
    """A monotonic deadline as a wall-clock time (None when it has passed)."""
    return _iso(time.time() + (monotonic_at - now)) if monotonic_at > now else None


def _backend(b: Backend, now: float) -> dict[str, Any]:
    h = b.health
    return {
        "name": b.name, "provider": b.provider.name, "priority": b.priority, "weight": b.weight,
        "available": h.available(now), "in_flight": b.inflight,
        "cooling_down_until": _wall(h.cooldown_until, now),
        "breaker": {"state": h.state(now), "consecutive_failures": h.failures,
                    "open_until": _wall(h.open_until, now),
                    "opened_because": h.opened_because or None},
        "spilling_until": _wall(h.spill_until, now),
        "last_error": {"what": h.last_error, "at": _iso(h.last_error_at)} if h.last_error else None,
    }


async def deployments(request: web.Request) -> web.Response:
    await admin_actor(request)
    return json_response({"object": "list", "data": await deployments_view(gateway_app(request))})


async def deployments_view(app: web.Application) -> list[dict[str, Any]]:
    """Each deployment's backends and limit headroom now (the API's and the console's)."""
    runtime = app[LIVE].runtime
    limiter = next((p for p in runtime.chain.policies if isinstance(p, RateLimitPolicy)), None)
    now = time.monotonic()
    out = []
    for d in runtime.deployments.values():
        entry: dict[str, Any] = {"name": d.name, "model": d.config.model,
                                 "backends": [_backend(b, now) for b in d.backends]}
        if limiter is not None:
            entry["limits"] = await _headroom(limiter, d.name)
        out.append(entry)
    return out


async def _headroom(limiter: RateLimitPolicy, deployment: str) -> Any:
    """The deployment's own buckets now: asked with a cost of nothing, which admits and
    charges nothing (the store refills them to now)."""
    buckets = [b for b in limiter.buckets(deployment, "") if b.scope == "deployment"]
    if not buckets:
        return []
    try:
        verdict = await limiter.store.admit(buckets, [0.0] * len(buckets))
    except StoreError as exc:
        return {"error": f"the limit store cannot be read: {exc}"}
    return [{"kind": b.kind, "capacity": b.capacity, "per_minute": round(b.per_second * 60),
             "remaining": max(0.0, left)} for b, left in zip(buckets, verdict.remaining, strict=True)]


def redacted_config(config: GatewayConfig) -> dict[str, Any]:
    """The config as it runs, with no secret: key digests become counts, URLs lose
    their passwords. Secret *names* (key_env, password_env) stay: they are not secrets."""
    data = dump_public(config)
    for consumer in data.get("consumers", []):
        consumer["api_keys"] = f"{len(consumer.get('api_keys') or [])} key(s)"
    admin = data.get("admin") or {}
    admin["api_keys"] = sorted(admin.get("api_keys") or {})  # the names only
    if data.get("redis", {}).get("url"):
        data["redis"]["url"] = redacted(data["redis"]["url"])
    return data


async def config(request: web.Request) -> web.Response:
    await admin_actor(request)
    return json_response(config_view(gateway_app(request)))


def config_view(app: web.Application) -> dict[str, Any]:
    live = app[LIVE]
    return {"version": live.version, "path": str(live.path) if live.path else None,
            "loaded_at": _iso(live.loaded_at), "last_reload": _reload_view(live.last_reload),
            "config": redacted_config(live.config)}


def _reload_view(last: dict[str, Any] | None) -> dict[str, Any] | None:
    return {**last, "at": _iso(last["at"])} if last else None


async def reload_now(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    return json_response(reload_config(gateway_app(request), actor))


def reload_config(app: web.Application, actor: str) -> dict[str, Any]:
    """The config file read again; Conflict saying why when it was refused."""
    live = app[LIVE]
    try:
        ok = reload(app)
    except ConfigError as exc:
        raise Conflict(str(exc)) from None
    if not ok:
        error = (live.last_reload or {}).get("error", "")
        raise Conflict(f"The config file was refused; version {live.version} stays: {error}")
    log.info("reload asked by %s", actor)
    return {"result": "ok", "version": live.version, "loaded_at": _iso(live.loaded_at)}
