"""What is limited: the config models, and the buckets that apply to one
(deployment, consumer) pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["deployment", "consumer"]
Kind = Literal["requests", "tokens"]


class Burst(BaseModel):
    """Bucket capacities when they should differ from the per-minute figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    requests: int | None = Field(None, gt=0)
    tokens: int | None = Field(None, gt=0)


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)
    burst: Burst | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    """One token bucket: `capacity` units, refilled continuously at `per_second`."""

    key: str
    scope: Scope
    kind: Kind
    capacity: float
    per_second: float


def buckets_for(
    deployment: str, consumer: str | None,
    deployment_limits: LimitsConfig | None, consumer_limits: LimitsConfig | None,
) -> tuple[Bucket, ...]:
    # Every key of one request shares the hash tag {deployment}, so the one
    # script call that touches them all runs on a single Redis Cluster slot.
    tag = f"mg:rl:{{{deployment}}}"
    out: list[Bucket] = []
    for scope, limits, prefix in (
        ("deployment", deployment_limits, f"{tag}:d"),
        ("consumer", consumer_limits, f"{tag}:c:{consumer}"),
    ):
        if limits is None:
            continue
        burst = limits.burst or Burst()
        for kind, per_minute, cap in (
            ("requests", limits.requests_per_minute, burst.requests),
            ("tokens", limits.tokens_per_minute, burst.tokens),
        ):
            if per_minute is not None:
                out.append(Bucket(f"{prefix}:{kind}", scope, kind,  # type: ignore[arg-type]
                                  float(cap or per_minute), per_minute / 60.0))
    return tuple(out)
