"""Which policies run, in which order, built from the config: an explicit list.
Rate limits run first, so a rejected request costs one store round trip and
nothing else; policies added later (content filters) come after it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.backends import default_name
from gateway.config import GatewayConfig
from gateway.keys import LIMITER, LIVE, METRICS
from gateway.limiter import Limiter
from gateway.services import GatewayServices
from policies import Policy
from policies.auth import ConsumerConfig
from policies.content import ContentFilterPolicy, ContentProfile, ContentStats
from policies.ratelimit import (
    ConsumerLimits,
    DeploymentLimits,
    MemoryStore,
    RateLimitPolicy,
)


async def limiter_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[LIVE].config
    # Consumers made through the admin API may bring limits and quotas of their own.
    admin = bool(config.admin.api_keys or config.admin.entra)
    if not config.has_limits and not admin:
        app[LIMITER] = Limiter(None, "none")
    elif config.redis.url:
        from gateway.redis_client import connect
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


def build_policies(config: GatewayConfig, limiter: Limiter,
                   content_stats: ContentStats, services: GatewayServices,
                   consumers: Sequence[ConsumerConfig] | None = None) -> list[Policy]:
    """The policies of a config; `consumers`: the config's and the database's together."""
    consumers = config.consumers if consumers is None else consumers
    policies: list[Policy] = []
    limited = any(d.limits for d in config.deployments) or any(
        c.limits or c.limits_by_deployment or c.quotas or c.quotas_by_deployment for c in consumers)
    if limiter.store is not None and limited:
        policies.append(RateLimitPolicy(
            limiter.store,
            {d.name: DeploymentLimits(d.limits, d.default_max_tokens, d.pricing, {
                b.name or default_name(b): b.pricing for b in d.backends if b.pricing})
             for d in config.deployments},
            {c.name: ConsumerLimits(c.limits, c.limits_by_deployment, c.quotas,
                                    c.quotas_by_deployment) for c in consumers},
            on_error=config.redis.on_error,
            stats=limiter.stats,
            settlements=limiter.settlements,
            zone=ZoneInfo(config.quotas_timezone),
        ))
    profiles = {name: ContentProfile(name, filters, services)
                for name, filters in config.content_filters.items()}
    by_deployment = {d.name: profiles[d.content_filter] for d in config.deployments
                     if d.content_filter is not None}
    if by_deployment:
        policies.append(ContentFilterPolicy(by_deployment, config.content_holdback_chars,
                                            content_stats, config.content_filter_budget_seconds))
    return policies
