"""Rate limits: token buckets per deployment and per consumer, for requests and
tokens, in Redis or in process."""

from policies.ratelimit.buckets import Store, StoreError, Verdict
from policies.ratelimit.estimate import Reservation, reserve
from policies.ratelimit.limits import Bucket, Burst, LimitsConfig, buckets_for
from policies.ratelimit.memory_store import MemoryStore
from policies.ratelimit.policy import (
    ConsumerLimits,
    DeploymentLimits,
    LimiterStats,
    RateLimitPolicy,
    Settlements,
)
from policies.ratelimit.quotas import ImagePrice, PricingConfig, QuotasConfig, cost_micros

__all__ = [
    "Bucket", "Burst", "ConsumerLimits", "DeploymentLimits", "ImagePrice", "LimiterStats",
    "LimitsConfig",
    "MemoryStore", "PricingConfig", "QuotasConfig", "RateLimitPolicy", "Reservation",
    "Settlements", "Store", "StoreError", "Verdict",
    "buckets_for", "cost_micros", "reserve",
]
