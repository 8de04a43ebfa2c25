"""The live, immutable view of one config: deployments with their backends,
the authenticator and the policy chain. Swapped whole when the config changes."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.config import DeploymentConfig, GatewayConfig
from gateway.core.errors import AllBackendsThrottled, GatewayError, NoHealthyBackend, UnknownModel
from gateway.upstream.backends import Backend, build_backend
from gateway.upstream.client import HeaderPolicy
from gateway.upstream.credentials import Credentials
from policies import Caller, Policy, PolicyChain
from policies.auth import Authenticator, ConsumerConfig, EntraValidator, RuntimeKey
from policies.auth.entra import FetchJson
from policies.ratelimit import PricingConfig


@dataclass(slots=True, eq=False)
class Deployment:
    config: DeploymentConfig
    # Backends grouped by priority, lowest first.
    groups: tuple[tuple[Backend, ...], ...]
    backends: tuple[Backend, ...]  # all of them, in config order
    prices: dict[str, PricingConfig] = field(default_factory=dict)  # backends' own prices

    @property
    def name(self) -> str:
        return self.config.name

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
            ms = max(1, math.ceil(wait * 1000))
            return AllBackendsThrottled(
                f"Every backend of deployment {self.name} is rate limited by its upstream. "
                f"Please retry after {max(1, math.ceil(wait))} seconds.",
                headers={"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(ms)},
            )
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
        before = {(b.name, b.api, b.store_key): b.health for b in previous.backends}
        for backend in backends:
            health = before.get((backend.name, backend.api, backend.store_key))
            if health is not None:
                backend.health = health
    priorities = sorted({b.priority for b in backends})
    groups = tuple(tuple(b for b in backends if b.priority == p) for p in priorities)
    prices = {b.name: c.pricing for b, c in zip(backends, config.backends, strict=True)
              if c.pricing is not None}
    return Deployment(config, groups, tuple(backends), prices)


class Runtime:
    def __init__(
        self,
        config: GatewayConfig,
        credentials: Credentials,
        policies: Sequence[Policy] = (),
        fetch_json: FetchJson | None = None,
        consumers: Sequence[ConsumerConfig] | None = None,
        runtime_keys: Sequence[RuntimeKey] = (),
        previous: Runtime | None = None,
        version: int = 0,
    ) -> None:
        """`consumers`: the config's and the database's (default: the config's);
        `runtime_keys`: keys issued at runtime; `previous`: the runtime this replaces,
        whose backends' health carries over; `version`: the team change it reflects."""
        self.config = config
        self.version = version
        consumers = config.consumers if consumers is None else consumers
        old: dict[str, Deployment] = previous.deployments if previous is not None else {}
        self.deployments: dict[str, Deployment] = {
            d.name: build_deployment(d, credentials, old.get(d.name)) for d in config.deployments}
        entra = None
        if config.auth.entra is not None:
            if fetch_json is None:
                raise ValueError("auth.entra needs a way to fetch the JWKS")
            entra = EntraValidator(config.auth.entra, fetch_json)
        self.entra = entra
        self.consumers = tuple(consumers)
        self.authenticator = Authenticator(
            consumers, allow_anonymous=config.auth.allow_anonymous, entra=entra,
            runtime_keys=runtime_keys,
        )
        self.chain = PolicyChain(policies)
        self._inflight_caps = {c.name: c.max_inflight for c in consumers
                               if c.max_inflight is not None}
        self.headers = HeaderPolicy(config.server.forward_request_headers)

    def inflight_cap(self, consumer: str) -> int:
        return self._inflight_caps.get(consumer, self.config.server.max_inflight_per_consumer)

    def allowed(self, caller: Caller) -> list[str]:
        return [name for name in self.deployments if caller.may_use(name)]

    def resolve(self, alias: str, caller: Caller) -> Deployment:
        deployment = self.deployments.get(alias)
        # An alias the caller may not use is answered exactly like one that does
        # not exist, so that a key cannot be used to map the others' deployments.
        if deployment is None or not caller.may_use(alias):
            allowed = self.allowed(caller)
            listing = ", ".join(allowed) if allowed else "none"
            raise UnknownModel(
                f"Unknown model: {alias}. The models you may use here are: {listing}.",
                param="model",
            )
        return deployment
