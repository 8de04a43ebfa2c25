"""Which policies run, in which order, built from the config: an explicit list.
Rate limits run first, so a rejected request costs one store round trip and
nothing else; policies added later (content filters) come after it."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.enforcement.limiter import Limiter
from gateway.enforcement.services import GatewayServices
from gateway.upstream.backends import default_name
from policies import Policy
from policies.auth import ConsumerConfig
from policies.content import ContentFilterPolicy, ContentProfile, ContentStats
from policies.ratelimit import (
    ConsumerLimits,
    DeploymentLimits,
    RateLimitPolicy,
)


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


EXTRA_POLICIES = web.AppKey("extra_policies", tuple)  # given to create_app, kept on reload
