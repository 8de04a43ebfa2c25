from __future__ import annotations

from typing import Any

import pytest

from gateway.apis.chat import CHAT
from policies import (
    Caller,
    Policy,
    PolicyChain,
    PolicyUnavailable,
    RateLimited,
    RequestContext,
)


def ctx() -> RequestContext:
    return RequestContext("rid", CHAT, "chat", Caller("c", None), {}, False)


class Recorder(Policy):
    def __init__(self, name: str, log: list[str]) -> None:
        self.label, self.log = name, log

    async def on_request(self, ctx: RequestContext) -> None:
        self.log.append(f"{self.label}.request")

    async def on_response(self, ctx: RequestContext) -> None:
        self.log.append(f"{self.label}.response")


class Rejects(Policy):
    name = "limiter"

    async def on_request(self, ctx: RequestContext) -> None:
        raise RateLimited("too many", retry_after_s=1.2)


class Breaks(Policy):
    name = "broken"

    def __init__(self, fail_open: bool) -> None:
        self.fail_open = fail_open

    async def on_request(self, ctx: RequestContext) -> None:
        raise RuntimeError("backend of the policy is down")

    async def on_response(self, ctx: RequestContext) -> None:
        raise RuntimeError("still down")


class Upper(Policy):
    async def on_response_chunk(
        self, ctx: RequestContext, event: dict[str, Any]
    ) -> list[dict[str, Any]]:
        event["text"] = event["text"].upper()
        return [event]


async def test_hooks_run_in_order_and_unused_hooks_are_skipped() -> None:
    log: list[str] = []
    chain = PolicyChain([Recorder("a", log), Recorder("b", log)])
    assert chain.looks_at_requests and chain.looks_at_responses and not chain.looks_at_chunks
    await chain.on_request(ctx())
    await chain.on_response(ctx())
    assert log == ["a.request", "b.request", "a.response", "b.response"]
    assert not PolicyChain().looks_at_requests


async def test_a_typed_rejection_stops_the_chain() -> None:
    log: list[str] = []
    chain = PolicyChain([Rejects(), Recorder("after", log)])
    with pytest.raises(RateLimited) as err:
        await chain.on_request(ctx())
    assert log == []
    assert err.value.headers() == {
        "Retry-After": "2", "retry-after-ms": "1200",
        "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0",
    }


async def test_unexpected_failure_fails_closed_unless_open() -> None:
    with pytest.raises(PolicyUnavailable) as err:
        await PolicyChain([Breaks(fail_open=False)]).on_request(ctx())
    assert err.value.status == 503 and "broken" in err.value.message
    log: list[str] = []
    await PolicyChain([Breaks(fail_open=True), Recorder("next", log)]).on_request(ctx())
    assert log == ["next.request"]


async def test_on_response_runs_every_policy_even_after_a_failure() -> None:
    log: list[str] = []
    await PolicyChain([Breaks(fail_open=False), Recorder("b", log)]).on_response(ctx())
    assert log == ["b.response"]


async def test_chunk_hooks_edit_events_in_place() -> None:
    chain = PolicyChain([Upper()])
    assert await chain.on_response_chunk(ctx(), {"text": "abc"}) == [{"text": "ABC"}]
    assert chain.looks_at_chunks and await chain.on_stream_end(ctx()) == []
