from __future__ import annotations

import time
from collections import Counter

import pytest

from gateway.config import GatewayConfig
from gateway.core.errors import UnknownModel
from gateway.runtime.snapshot import Runtime
from gateway.upstream.credentials import Credentials
from policies import Caller


def config() -> GatewayConfig:
    def backend(name: str, priority: int, weight: int) -> dict[str, object]:
        return {"url": "http://sim/v1", "api": "openai", "name": name, "priority": priority,
                "weight": weight}

    return GatewayConfig(
        auth={"allow_anonymous": True}, server={"host": "127.0.0.1"},
        deployments=[
            {"name": "chat", "model": "m", "backends": [
                backend("spill", 5, 1), backend("a", 0, 1), backend("b", 0, 3)]},
            {"name": "other", "model": "m", "backends": [backend("x", 0, 1)]},
        ],
    )


def test_candidates_lowest_priority_first_weighted_inside() -> None:
    runtime = Runtime(config(), Credentials())
    deployment = runtime.deployments["chat"]
    firsts = Counter()
    for _ in range(4000):
        order = [b.name for b in deployment.candidates(time.monotonic())]
        assert order[-1] == "spill" and sorted(order[:2]) == ["a", "b"]
        firsts[order[0]] += 1
    assert 2700 < firsts["b"] < 3300  # weight 3 of 4


def test_resolve_hides_aliases_the_caller_may_not_use() -> None:
    runtime = Runtime(config(), Credentials())
    limited = Caller("team", frozenset({"other"}))
    assert runtime.resolve("other", limited).name == "other"
    messages = []
    for alias in ("chat", "nope"):  # exists but not allowed, and does not exist
        with pytest.raises(UnknownModel) as err:
            runtime.resolve(alias, limited)
        messages.append(str(err.value).split(". ", 1)[1])
    assert messages[0] == messages[1] == "The models you may use here are: other."
