"""Buckets in Redis: one EVALSHA per admission and one per settlement, on Redis
server time, keys hash-tagged per deployment so that Redis Cluster can run them.

Calls that are made while others are on their way share the next round trip: one
pipeline carries them all (see `_Batches`). A lone call leaves at once, so nothing
waits at low load; under load, redis-py's per-call cost, most of a Redis-limited
request's own CPU, is paid once per batch.

After a failed call the store answers StoreError at once for `backoff_s`
instead of making every request wait for a timeout; then it tries Redis again,
so it recovers by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(slots=True)
class _Call:
    script: _Script
    args: tuple[bytes | int, ...]  # numkeys, keys, then arguments
    answer: asyncio.Future[Any]


class _Batches:
    """One pipeline in flight at a time; calls that arrive meanwhile go in the next.

    The sending task is the batch's own, so a request cancelled while waiting (its
    client hung up) does not cancel the others' round trip."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.waiting: list[_Call] = []
        self.sender: asyncio.Task[None] | None = None

    def call(self, script: _Script, args: tuple[bytes | int, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self.waiting.append(_Call(script, args, answer))
        if self.sender is None:
            self.sender = loop.create_task(self._send_all())
        return answer

    async def _send_all(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    results = await self._send(batch)
                except asyncio.CancelledError:  # shutting down: nobody gets an answer
                    _fail(batch + self.waiting, None)
                    self.waiting = []
                    raise
                except Exception as exc:
                    _fail(batch, exc)
                    continue
                for call, result in zip(batch, results, strict=True):
                    if not call.answer.done():
                        if isinstance(result, Exception):
                            call.answer.set_exception(result)
                        else:
                            call.answer.set_result(result)
        finally:
            self.sender = None

    async def _send(self, batch: list[_Call]) -> list[Any]:
        results = await self._pipeline(batch)
        # Redis lost the scripts (a restart, a failover to a replica that never saw
        # them): load them and send those calls once more.
        lost = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if lost:
            for script in {batch[i].script for i in lost}:
                await self.client.script_load(script.source)
            again = await self._pipeline([batch[i] for i in lost])
            for i, result in zip(lost, again, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for call in batch:
            pipe.execute_command("EVALSHA", call.script.sha, *call.args)
        return list(await pipe.execute(raise_on_error=False))

    async def close(self) -> None:
        if self.sender is not None:
            await asyncio.wait([self.sender])


def _fail(batch: list[_Call], exc: Exception | None) -> None:
    """Every call of the batch gets `exc`, or is cancelled."""
    for call in batch:
        if call.answer.done():
            continue
        if exc is None:
            call.answer.cancel()
        else:
            call.answer.set_exception(exc)


class RedisStore:
    in_process = False

    def __init__(self, client: Any, *, backoff_s: float = 1.0) -> None:
        self.client = client
        self._admit = _Script("admit.lua")
        self._settle = _Script("settle.lua")
        self._backoff_s = backoff_s
        self._down_until = 0.0
        self._batches = _Batches(client)
        # Per bucket, its key and fixed arguments already encoded: redis-py would
        # encode them again on every call (a third of its cost for these commands).
        self._encoded: dict[Bucket, tuple[bytes, bytes, bytes]] = {}

    def _fixed(self, bucket: Bucket) -> tuple[bytes, bytes, bytes]:
        if bucket.resets_at is not None:
            # A quota: the scripts read a negative rate as minus the ms until its period ends.
            left_ms = max(1, math.ceil((bucket.resets_at - time.time()) * 1000))
            return bucket.key.encode(), repr(bucket.capacity).encode(), str(-left_ms).encode()
        encoded = self._encoded.get(bucket)
        if encoded is None:
            if len(self._encoded) > 100_000:  # buckets of configs reloaded away
                self._encoded.clear()
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
            return await self._batches.call(script, (len(keys), *keys, *args))
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
        await self._batches.close()
        await self.client.aclose()
