"""A deployment's backends in the order to try them: the lowest priority group first,
weighted inside a group (fewest in flight on equal weights), those spilling over
last; and the error when none may be tried. Backend health carries over when a
deployment is rebuilt (a reload, a team change)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from gateway.config import DeploymentConfig
from gateway.core.errors import AllBackendsThrottled, GatewayError, NoHealthyBackend
from gateway.core.tokens import encoding_for
from gateway.upstream.backends import Backend, build_backend
from gateway.upstream.credentials import Credentials
from policies.ratelimit import PricingConfig
from policies.retry import retry_headers


@dataclass(slots=True, eq=False)
class Deployment:
    config: DeploymentConfig
    # Backends grouped by priority, lowest first.
    groups: tuple[tuple[Backend, ...], ...]
    backends: tuple[Backend, ...]  # all of them, in config order
    prices: dict[str, PricingConfig] = field(default_factory=dict)  # backends' own prices
    counted_by: str | None = None  # the encoding, once looked up (`encoding`)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def encoding(self) -> str:
        """The tokenizer encoding that counts this deployment's tokens (its model's, or
        the one the config names); looked up when first needed (it imports tiktoken)."""
        if self.counted_by is None:
            self.counted_by = encoding_for(self.config.model, self.config.tokenizer)
        return self.counted_by

    def price(self, backend: str) -> PricingConfig | None:
        """What the backend's tokens cost (its own prices, else the deployment's)."""
        return self.prices.get(backend, self.config.pricing)

    def candidates(self, now: float) -> list[Backend]:
        """Available backends in the order to try them: the lowest priority group
        first; inside a group weighted-random, or fewest in flight when the weights
        are equal."""
        order: list[Backend] = []
        spilling: list[Backend] = []
        for group in self.groups:
            pool = [b for b in group if b.health.available(now)]
            spilling += [b for b in pool if b.health.spill_until > now]
            pool = [b for b in pool if b.health.spill_until <= now]
            if len(pool) <= 1:
                order += pool
            elif len({b.weight for b in pool}) == 1:
                order += sorted(pool, key=lambda b: (b.inflight, random.random()))
            else:
                while pool:
                    pick = random.choices(pool, weights=[b.weight for b in pool])[0]
                    order.append(pick)
                    pool.remove(pick)
        # Backends whose quota ran low come last, but still come.
        return order + spilling

    def nothing_available(self, now: float) -> GatewayError:
        """The error when no backend may be tried: 429 until the soonest recovery if
        every backend is cooling down after a 429, else 503."""
        backends = self.backends
        if all(b.health.cooled_by_429 and b.health.cooldown_until > now for b in backends):
            wait = max(0.001, min(b.health.cooldown_until for b in backends) - now)
            headers = retry_headers(wait)
            return AllBackendsThrottled(
                f"Every backend of deployment {self.name} is rate limited by its upstream. "
                f"Please retry after {headers['Retry-After']} seconds.", headers=headers)
        soonest = min(b.health.recovers_at() for b in backends)
        return NoHealthyBackend(
            f"No healthy backend for deployment {self.name}; the first may be tried again "
            f"in {max(0.0, soonest - now):.1f} s."
        )


def build_deployment(config: DeploymentConfig, credentials: Credentials,
                     previous: Deployment | None = None) -> Deployment:
    backends = [
        build_backend(b, config.model, credentials, f"deployments.{config.name}.backends[{i}]",
                      config.routing.breaker)
        for i, b in enumerate(config.backends)
    ]
    if previous is not None:
        # Cooldowns and breakers survive a rebuild for backends that did not change.
        before = {(b.name, b.provider.name, b.store_key): b.health for b in previous.backends}
        for backend in backends:
            health = before.get((backend.name, backend.provider.name, backend.store_key))
            if health is not None:
                backend.health = health
    priorities = sorted({b.priority for b in backends})
    groups = tuple(tuple(b for b in backends if b.priority == p) for p in priorities)
    prices = {b.name: c.pricing for b, c in zip(backends, config.backends, strict=True)
              if c.pricing is not None}
    return Deployment(config, groups, tuple(backends), prices)
