"""What a consumer may be, checked one way wherever one is made: in the config file
(`GatewayConfig`), through the admin API and with the team CLI. A consumer made at
runtime is the config's `ConsumerConfig` without its key digests (keys are issued
separately) and with a name that fits in a URL."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from policies.auth import EntraMatch
from policies.ratelimit import LimitsConfig, QuotasConfig

NAME = r"^[A-Za-z0-9._-]{1,100}$"


class ConsumerSpec(BaseModel):
    """A consumer made at runtime (all of it, or on PATCH some of it)."""

    model_config = ConfigDict(extra="forbid")
    deployments: tuple[str, ...] = ()
    limits: LimitsConfig | None = None
    limits_by_deployment: dict[str, LimitsConfig] = {}
    quotas: QuotasConfig | None = None
    quotas_by_deployment: dict[str, QuotasConfig] = {}
    entra: EntraMatch | None = None
    metadata: dict[str, str] = {}
    max_inflight: int | None = Field(None, ge=1)


class NewConsumer(ConsumerSpec):
    name: str = Field(pattern=NAME)
    deployments: tuple[str, ...] = Field(min_length=1)


class ConsumerProblem(ValueError):
    """A consumer that does not fit the config it would run under; `param` names the
    field at fault."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def check_consumer(deployments: Iterable[str], limits_by_deployment: Iterable[str],
                   quotas_by_deployment: Iterable[str], has_entra: bool,
                   known: set[str], entra_configured: bool) -> None:
    """Raise `ConsumerProblem` unless every deployment the consumer names exists (`known`)
    and an Entra match comes with `auth.entra` configured."""
    unknown = [d for d in deployments if d != "*" and d not in known]
    if unknown:
        raise ConsumerProblem(f"names unknown deployments: {', '.join(unknown)}", "deployments")
    unknown = [d for d in (*limits_by_deployment, *quotas_by_deployment) if d not in known]
    if unknown:
        raise ConsumerProblem("has limits or quotas by deployment for unknown deployments: "
                              + ", ".join(unknown), "limits_by_deployment")
    if has_entra and not entra_configured:
        raise ConsumerProblem("has an entra match, which needs auth.entra in the config", "entra")
