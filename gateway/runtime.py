"""The live, immutable view of one config: deployments with their backends,
the authenticator and the policy chain. Swapped whole when the config changes."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.backends import Backend, build_backend
from gateway.config import DeploymentConfig, GatewayConfig
from gateway.credentials import Credentials
from gateway.errors import UnknownModel
from policies import Caller, Policy, PolicyChain
from policies.auth import Authenticator, EntraValidator
from policies.auth.entra import FetchJson


@dataclass(slots=True, eq=False)
class Deployment:
    config: DeploymentConfig
    # Backends grouped by priority, lowest first.
    groups: tuple[tuple[Backend, ...], ...]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def backends(self) -> tuple[Backend, ...]:
        return tuple(b for group in self.groups for b in group)

    def candidates(self) -> list[Backend]:
        """Backends in the order to try them: the lowest priority group first,
        in a weighted-random order inside each group."""
        order: list[Backend] = []
        for group in self.groups:
            if len(group) == 1:
                order.append(group[0])
                continue
            pool = list(group)
            while pool:
                pick = random.choices(pool, weights=[b.weight for b in pool])[0]
                order.append(pick)
                pool.remove(pick)
        return order


def build_deployment(config: DeploymentConfig, credentials: Credentials) -> Deployment:
    backends = [
        build_backend(b, config.model, credentials, f"deployments.{config.name}.backends[{i}]")
        for i, b in enumerate(config.backends)
    ]
    priorities = sorted({b.priority for b in backends})
    groups = tuple(tuple(b for b in backends if b.priority == p) for p in priorities)
    return Deployment(config, groups)


class Runtime:
    def __init__(
        self,
        config: GatewayConfig,
        credentials: Credentials,
        policies: Sequence[Policy] = (),
        fetch_json: FetchJson | None = None,
    ) -> None:
        self.config = config
        self.deployments = {d.name: build_deployment(d, credentials) for d in config.deployments}
        entra = None
        if config.auth.entra is not None:
            if fetch_json is None:
                raise ValueError("auth.entra needs a way to fetch the JWKS")
            entra = EntraValidator(config.auth.entra, fetch_json)
        self.authenticator = Authenticator(
            config.consumers, allow_anonymous=config.auth.allow_anonymous, entra=entra
        )
        self.chain = PolicyChain(policies)
        self.max_body_bytes = config.server.max_body_bytes

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
