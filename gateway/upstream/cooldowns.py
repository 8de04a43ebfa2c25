"""Backend cooldowns shared between replicas: when one replica's upstream answers
429, it publishes the cooldown on a Redis channel and every other replica applies
it to its own view of that backend. Pub/sub rather than a key read per request:
the hot path stays free of Redis round trips, and a cooldown reaches the others
within one network hop. Best effort by design: a lost message only means another
replica learns the same 429 itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger("gateway.cooldowns")

CHANNEL = "mg:backend-cooldowns"

Apply = Callable[[str, str, float], None]  # deployment, backend, seconds


class CooldownBus:
    def __init__(self, client: Any | None) -> None:
        self.client = client  # None: no Redis, cooldowns stay in this process
        self.origin = os.urandom(8).hex()
        self.received = 0
        self._task: asyncio.Task[None] | None = None

    async def publish(self, deployment: str, backend: str, seconds: float) -> None:
        if self.client is None:
            return
        message = orjson.dumps({"o": self.origin, "d": deployment, "b": backend, "s": seconds})
        try:
            async with asyncio.timeout(0.5):
                await self.client.publish(CHANNEL, message)
        except Exception as exc:
            log.warning("could not share a cooldown of %s/%s: %r", deployment, backend, exc)

    def start(self, apply: Apply) -> None:
        if self.client is not None:
            self._task = asyncio.get_running_loop().create_task(self._listen(apply))

    async def _listen(self, apply: Apply) -> None:
        assert self.client is not None
        while True:
            try:
                pubsub = self.client.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = orjson.loads(message["data"])
                    if data.get("o") == self.origin:
                        continue
                    self.received += 1
                    apply(str(data["d"]), str(data["b"]), float(data["s"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cooldown channel lost (%r); reconnecting", exc)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None:
            await self.client.aclose()


def bus_ctx(redis_url: Callable[[web.Application], str | None],
            key: web.AppKey[CooldownBus]) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        url = redis_url(app)
        client = None
        if url:
            from gateway.core.redis_client import connect

            # Plain PUBLISH/SUBSCRIBE reach every node of a Redis Cluster too, so a
            # cluster's URL is used as one node's.
            client = connect(url, timeout_s=None)
        app[key] = bus = CooldownBus(client)
        yield
        await bus.close()

    return ctx


COOLDOWNS = web.AppKey("cooldowns", CooldownBus)  # backend cooldowns shared via Redis
