"""Buckets in Redis: one EVALSHA per admission and one per settlement, on Redis
server time, keys hash-tagged per deployment so that Redis Cluster can run them.

After a failed call the store answers StoreError at once for `backoff_s`
instead of making every request wait for a timeout; then it tries Redis again,
so it recovers by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from policies.ratelimit.buckets import StoreError, Verdict
from policies.ratelimit.limits import Bucket

_LUA = resources.files("policies.ratelimit") / "lua"
log = logging.getLogger("policies.ratelimit")


class _Script:
    """A Lua script called by its SHA, and loaded again if Redis lost it (a restart,
    a failover to a replica that never saw it)."""

    def __init__(self, name: str) -> None:
        self.source = (_LUA / name).read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()


class RedisStore:
    def __init__(self, client: Any, *, backoff_s: float = 1.0) -> None:
        self.client = client
        self._admit = _Script("admit.lua")
        self._settle = _Script("settle.lua")
        self._backoff_s = backoff_s
        self._down_until = 0.0
        # Per bucket, its key and fixed arguments already encoded: redis-py would
        # encode them again on every call (a third of its cost for these commands).
        self._encoded: dict[Bucket, tuple[bytes, bytes, bytes]] = {}

    def _fixed(self, bucket: Bucket) -> tuple[bytes, bytes, bytes]:
        encoded = self._encoded.get(bucket)
        if encoded is None:
            encoded = self._encoded[bucket] = (
                bucket.key.encode(), repr(bucket.capacity).encode(),
                repr(bucket.per_second / 1000.0).encode())
        return encoded

    async def _call(self, script: _Script, buckets: Sequence[Bucket], values: Sequence[float]) -> Any:
        if time.monotonic() < self._down_until:
            raise StoreError("Redis failed a moment ago; not asking again yet")
        keys: list[bytes] = []
        args: list[bytes] = []
        for bucket, value in zip(buckets, values, strict=True):
            key, capacity, rate = self._fixed(bucket)
            keys.append(key)
            args += (capacity, rate, repr(value).encode())
        try:
            try:
                return await self.client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                await self.client.script_load(script.source)
                return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # RedisError, OSError, and the client's own races
            if not isinstance(exc, RedisError | OSError):
                log.warning("unexpected error from the Redis client: %r", exc)
            self._down_until = time.monotonic() + self._backoff_s
            raise StoreError(f"Redis: {type(exc).__name__}: {exc}") from exc

    async def warm_up(self) -> None:
        """Connect (and learn a cluster's slots) once at start-up, and load the scripts,
        rather than letting the first burst of requests race to do it."""
        try:
            if hasattr(self.client, "initialize"):
                await self.client.initialize()
            await self.client.script_load(self._admit.source)
            await self.client.script_load(self._settle.source)
        except Exception as exc:
            # Not fatal: the store recovers by itself once Redis answers.
            log.warning("Redis is not reachable at start-up (%r); on_error applies until it is", exc)

    async def admit(self, buckets: Sequence[Bucket], costs: Sequence[float]) -> Verdict:
        admitted, failed, wait_ms, *remaining = await self._call(self._admit, buckets, costs)
        wait = float("inf") if wait_ms == -1 else wait_ms / 1000.0
        return Verdict(bool(admitted), int(failed), wait, tuple(float(r) for r in remaining))

    async def settle(self, buckets: Sequence[Bucket], deltas: Sequence[float]) -> None:
        await self._call(self._settle, buckets, deltas)

    async def close(self) -> None:
        await self.client.aclose()
