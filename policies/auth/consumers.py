"""Consumers: who may call, with which keys, and which deployments they may use."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.auth.api_keys import DIGEST_RE
from policies.auth.entra import EntraMatch
from policies.ratelimit.limits import LimitsConfig
from policies.ratelimit.quotas import QuotasConfig


class ConsumerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    api_keys: tuple[str, ...] = ()
    # Entra ID callers that are this consumer (first match in config order wins).
    entra: EntraMatch | None = None
    # Aliases this consumer may use; "*" means all. Required: access is never implied.
    deployments: tuple[str, ...]
    # Counted per consumer and deployment pair; limits_by_deployment overrides per alias.
    limits: LimitsConfig | None = None
    limits_by_deployment: dict[str, LimitsConfig] = {}
    # Per calendar day or month (quotas_timezone); across all deployments, or per one.
    quotas: QuotasConfig | None = None
    quotas_by_deployment: dict[str, QuotasConfig] = {}
    # Free-form labels for operators (a cost centre, an owner); never used for decisions.
    metadata: dict[str, str] = {}
    # Requests this consumer may have in flight at once (429 over it); default: the
    # server's max_inflight_per_consumer.
    max_inflight: int | None = Field(None, ge=1)

    @field_validator("api_keys")
    @classmethod
    def _digests_only(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for key in keys:
            if not DIGEST_RE.match(key):
                raise ValueError(
                    "api_keys holds SHA-256 digests ('sha256:<64 hex>'), never keys: "
                    "make one with `model-gateway hash-key`"
                )
        return keys

    @property
    def all_deployments(self) -> bool:
        return "*" in self.deployments
