"""The streamed hold-back window, driven event by event."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.apis.chat import CHAT
from policies import Caller, ContentBlocked, RequestContext
from policies.content import BlocklistConfig, ContentFilterPolicy, ContentProfile, PiiConfig


def policy(holdback: int) -> ContentFilterPolicy:
    profile = ContentProfile("p", [
        BlocklistConfig(type="blocklist", terms=("forbidden plan",)),
        PiiConfig(type="pii", kinds=("email",)),
    ])
    return ContentFilterPolicy({"chat": profile}, holdback)


def chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


async def run(p: ContentFilterPolicy, tokens: list[str]) -> list[list[str]]:
    ctx = RequestContext("r", CHAT, "chat", Caller("c", None),
                         {"messages": [{"role": "user", "content": "hi"}]}, True)
    await p.on_request(ctx)
    released = []
    for token in tokens:
        out = await p.on_response_chunk(ctx, chunk(token))
        released.append([e["choices"][0]["delta"]["content"] for e in out])
    released.append([e["choices"][0]["delta"]["content"] for e in await p.on_stream_end(ctx)])
    return released


async def test_text_is_released_once_the_window_is_full() -> None:
    released = await run(policy(10), ["abcd ", "fghi ", "klmn ", "pqrs "])
    assert released == [[], [], ["abcd "], ["fghi "], ["klmn ", "pqrs "]]


async def test_a_word_is_never_cut() -> None:
    released = await run(policy(2), ["abc", "def", "ghi ", "xyz"])
    assert released == [[], [], [], ["abc", "def", "ghi "], ["xyz"]]


async def test_a_term_split_across_events_is_blocked_before_release() -> None:
    with pytest.raises(ContentBlocked):
        await run(policy(32), ["the ", "forbid", "den p", "lan ", "is here"])


async def test_redaction_across_events_keeps_the_text_readable() -> None:
    released = await run(policy(8), ["write to jane", "@contoso", ".com", " today please"])
    assert "".join(t for batch in released for t in batch) == "write to [EMAIL] today please"


async def test_text_without_spaces_is_released_within_a_bounded_window() -> None:
    chunks = ["漢字"] * 500
    released = await run(policy(16), chunks)
    held = 0
    for sent, got in zip(chunks, released, strict=False):
        held += len(sent) - sum(len(t) for t in got)
        assert held <= 16 + 48 + 2  # the window, one word's length, one event
    assert sum(len(t) for batch in released for t in batch) == 1000
    assert sum(1 for batch in released[:-1] if batch) > 10  # released along the way


async def test_a_blocked_term_without_spaces_around_it_is_still_caught() -> None:
    p = ContentFilterPolicy({"chat": ContentProfile("p", [
        BlocklistConfig(type="blocklist", patterns=("禁止计划",))])}, 16)
    ctx = RequestContext("r", CHAT, "chat", Caller("c", None), {"messages": []}, True)
    await p.on_request(ctx)
    shown = ""
    with pytest.raises(ContentBlocked):
        for piece in ["文字"] * 60 + ["禁止", "计划"] + ["文字"] * 40:
            for event in await p.on_response_chunk(ctx, chunk(piece)):
                shown += event["choices"][0]["delta"]["content"]
        await p.on_stream_end(ctx)
    assert shown and "禁" not in shown  # text before it went out; none of the term did
