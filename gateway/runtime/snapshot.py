"""The live, immutable view of one config: deployments with their backends, the
authenticator, the policy chain and the header policy; `resolve(alias, caller)`.
Swapped whole when the config or the team changes."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.config import GatewayConfig
from gateway.core.errors import UnknownModel
from gateway.upstream.client import HeaderPolicy
from gateway.upstream.credentials import Credentials
from gateway.upstream.routing import Deployment, build_deployment
from policies import Caller, Policy, PolicyChain
from policies.auth import Authenticator, ConsumerConfig, EntraValidator, RuntimeKey
from policies.auth.entra import FetchJson


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
