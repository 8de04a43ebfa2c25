"""The configuration the reliability runs use: every API, a content filter and rate
limits, so that each request crosses every policy."""

from __future__ import annotations

from typing import Any

from tests.integration.test_anthropic_api import with_claude
from tests.integration.test_responses_api import with_responses

NEVER_HIT = {"requests_per_minute": 10**9, "tokens_per_minute": 10**12}


def everything(sim: str) -> dict[str, Any]:
    config = with_responses(sim)
    config["deployments"].append(with_claude(sim)["deployments"][-1])
    config["content_filters"] = {"strict": [
        {"type": "blocklist", "terms": ["forbidden plan"], "patterns": [r"secret-\d+"]},
        {"type": "pii", "action": "redact"}]}
    for deployment in config["deployments"]:
        deployment["limits"] = NEVER_HIT
        if deployment["name"] in ("chat", "gpt-5-mini", "claude-sonnet-4-5"):
            deployment["content_filter"] = "strict"
    return config
