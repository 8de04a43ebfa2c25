"""The filters' time budget bounds one check (and the prompt's checks together), never a
stream's lifetime: a long answer is many small checks, and whether it gets through must
not depend on how busy the machine is. Before, the budget was the sum over the whole
stream, and a 100 MB answer with filters ended in policy_unavailable when the machine
was busy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.apis.chat import CHAT
from policies import Caller, PolicyUnavailable, RequestContext
from policies.content import ContentFilterPolicy, ContentProfile, HookConfig

# What each check costs, set by a test: the hook below stands in for a filter's work.
WORK: dict[str, float] = {"seconds": 0.0}


async def slow_check(text: str, stage: str) -> bool:
    await asyncio.sleep(WORK["seconds"])  # the work of one check, not an ordering wait
    return False


def policy(budget: float) -> ContentFilterPolicy:
    hook = HookConfig(type="hook", callable=f"{__name__}:slow_check", timeout_seconds=30)
    return ContentFilterPolicy({"chat": ContentProfile("p", [hook])}, holdback_chars=8,
                               budget_seconds=budget)


def chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


async def test_a_stream_of_many_checks_outlives_the_budget_of_one() -> None:
    p = policy(budget=0.2)
    ctx = RequestContext("r", CHAT, "chat", Caller("c", None),
                         {"messages": [{"role": "user", "content": "hi"}]}, True)
    WORK["seconds"] = 0.0
    await p.on_request(ctx)
    WORK["seconds"] = 0.01  # each check well inside the budget; all of them far beyond it
    released = 0
    for _ in range(60):
        released += len(await p.on_response_chunk(ctx, chunk("word word ")))
    released += len(await p.on_stream_end(ctx))
    assert released == 60 and p.stats.checks > 40 and p.stats.seconds > 0.2


async def test_one_check_over_the_budget_is_refused() -> None:
    p = policy(budget=0.05)
    ctx = RequestContext("r", CHAT, "chat", Caller("c", None),
                         {"messages": [{"role": "user", "content": "hi"}]}, True)
    WORK["seconds"] = 5.0
    with pytest.raises(PolicyUnavailable, match="longer than its time budget"):
        await p.on_request(ctx)


async def test_the_prompts_checks_share_one_budget() -> None:
    p = policy(budget=0.05)
    ctx = RequestContext("r", CHAT, "chat", Caller("c", None), {"messages": [
        {"role": "user", "content": f"part {i}"} for i in range(40)]}, True)
    WORK["seconds"] = 0.01
    with pytest.raises(PolicyUnavailable, match="on its prompt"):
        await p.on_request(ctx)
