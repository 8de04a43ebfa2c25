"""The rate-limit store an app holds, with its statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.ops.metrics import METRICS
from policies.ratelimit import LimiterStats, MemoryStore, Settlements, Store


class Limiter:
    """The rate-limit store and its statistics; outlives config reloads."""

    def __init__(self, store: Store | None, backend: str) -> None:
        self.store = store
        self.backend = backend  # "redis", "memory" or "none", for logs and `check`
        self.stats = LimiterStats()
        self.settlements = Settlements()


LIMITER = web.AppKey("limiter", Limiter)  # rate-limit store; outlives reloads


def limiter_ctx(
    config_of: Callable[[web.Application], GatewayConfig],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's rate-limit store (Redis, this process, or none), made at start and
    closed after the requests have drained; its statistics feed the metrics."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = config_of(app)
        # Consumers made through the admin API may bring limits and quotas of their own.
        admin = bool(config.admin.api_keys or config.admin.entra)
        if not config.has_limits and not admin:
            app[LIMITER] = Limiter(None, "none")
        elif config.redis.url:
            from gateway.core.redis_client import connect
            from policies.ratelimit.redis_store import RedisStore  # only when used

            client = connect(config.redis.url, cluster=config.redis.cluster,
                             timeout_s=config.redis.timeout_seconds)
            redis_store = RedisStore(client)
            await redis_store.warm_up()
            app[LIMITER] = Limiter(redis_store, "redis")
        else:
            app[LIMITER] = Limiter(MemoryStore(), "memory")
        app[METRICS].limiter = app[LIMITER].stats
        yield
        limiter = app[LIMITER]
        if limiter.store is not None:
            # Requests have drained by now; their settlements may still be on the way.
            await limiter.settlements.drain(timeout_s=5.0)
            await limiter.store.close()

    return ctx
