"""The streamed hold-back window, driven event by event."""

from __future__ import annotations

from typing import Any

import pytest

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
    ctx = RequestContext("r", "chat/completions", "chat", Caller("c", None),
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
