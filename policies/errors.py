"""The errors a policy raises to reject a request.

    PolicyError                 a policy said no; carries status, code, message
     ├── Unauthenticated        401: no credential, or one that matches nothing
     ├── PermissionDenied       403: a known caller asked for something it may not use
     ├── RateLimited            429: a limit is exhausted; says when to come back
     │    └── QuotaExceeded     429 quota_exceeded: a quota is used up until its period ends
     ├── ExceedsLimit           400: the request alone is larger than a limit's capacity
     ├── ContentBlocked         400: a content filter refused the text
     └── PolicyUnavailable      503: a policy failed and is configured to fail closed

Policies never speak HTTP; `status` and `code` are the contract's numbers and
names, and the gateway decides how each client flavour renders them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from policies.retry import retry_headers


class PolicyError(Exception):
    status: ClassVar[int] = 400
    code: str = "policy_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        return {}

    def details(self) -> dict[str, Any]:
        """Extra fields placed beside `code` and `message` in the error body."""
        return {}


class Unauthenticated(PolicyError):
    status = 401
    code = "invalid_api_key"


class PermissionDenied(PolicyError):
    status = 403
    code = "permission_denied"


class RateLimited(PolicyError):
    status = 429
    code = "429"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float,
        remaining_requests: int = 0,
        remaining_tokens: int = 0,
        scope: str = "",
        limit: str = "",
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.scope, self.limit = scope, limit
        self.remaining_requests = remaining_requests
        self.remaining_tokens = remaining_tokens

    def headers(self) -> dict[str, str]:
        return {
            **retry_headers(self.retry_after_s),
            "x-ratelimit-remaining-requests": str(self.remaining_requests),
            "x-ratelimit-remaining-tokens": str(self.remaining_tokens),
        }


class QuotaExceeded(RateLimited):
    """A consumer's quota for the period is used up: come back when it resets."""

    code = "quota_exceeded"

    def headers(self) -> dict[str, str]:
        # The official SDKs retry a 429 on their own unless told not to: a quota that
        # resets tonight is not worth their retries.
        return {**retry_headers(self.retry_after_s), "x-should-retry": "false"}


class ExceedsLimit(PolicyError):
    status = 400
    code = "request_exceeds_limit"


class ContentBlocked(PolicyError):
    status = 400
    code = "content_filter"

    def __init__(self, message: str, *, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result

    def details(self) -> dict[str, Any]:
        return {
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": self.result,
            }
        }


class PolicyUnavailable(PolicyError):
    status = 503
    code = "policy_unavailable"
