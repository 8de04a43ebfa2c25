"""When to retry, in the two headers every refusal that may be retried carries:
azure-core reads `Retry-After` (whole seconds), the openai and anthropic SDKs prefer
`retry-after-ms`. The one place both are made, for the gateway's refusals (rate limits,
quotas, caps, busy) and for an upstream's 429 passed on."""

from __future__ import annotations

import math


def retry_headers(seconds: float) -> dict[str, str]:
    """Both headers for a wait of `seconds`: milliseconds rounded up (at least 1), and
    whole seconds rounded up from those (at least 1), so the two never disagree."""
    ms = max(1, math.ceil(seconds * 1000)) if math.isfinite(seconds) else 1
    return {"Retry-After": str(max(1, -(-ms // 1000))), "retry-after-ms": str(ms)}
