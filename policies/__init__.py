"""Enforcement: authentication, and the policy chain that rate limits and content
filters plug into. This package never imports `gateway`."""

from policies.base import ANONYMOUS, Caller, Policy, RequestContext, Usage
from policies.chain import PolicyChain
from policies.errors import (
    ContentBlocked,
    ExceedsLimit,
    PermissionDenied,
    PolicyError,
    PolicyUnavailable,
    QuotaExceeded,
    RateLimited,
    Unauthenticated,
)

__all__ = [
    "ANONYMOUS",
    "Caller",
    "ContentBlocked",
    "ExceedsLimit",
    "PermissionDenied",
    "Policy",
    "PolicyChain",
    "PolicyError",
    "PolicyUnavailable",
    "QuotaExceeded",
    "RateLimited",
    "RequestContext",
    "Unauthenticated",
    "Usage",
]
