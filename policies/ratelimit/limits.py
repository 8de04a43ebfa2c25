"""What is limited: the config models, and the buckets that apply to one
(deployment, consumer) pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["deployment", "consumer", "consumer-deployment"]
Kind = Literal["requests", "tokens", "quota_tokens_day", "quota_tokens_month", "quota_requests_day",
               "quota_cost_month", "quota_images_day", "quota_images_month",
               "quota_audio_seconds_day", "quota_audio_seconds_month", "quota_characters_day",
               "quota_characters_month"]


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
    """One token bucket: `capacity` units, refilled continuously at `per_second`; or a
    quota (`resets_at` set): `capacity` units for one calendar period, never refilled,
    the store keeping what was used so that a changed capacity applies at once."""

    key: str
    scope: Scope
    kind: Kind
    capacity: float
    per_second: float
    resets_at: float | None = None  # a quota: epoch seconds at its period's end
    period: str = ""  # a quota: "2026-12" or "2026-12-02"

    @property
    def quota(self) -> bool:
        return self.resets_at is not None


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
