"""A long answer without usage: its pieces are counted as they pile up and let go, and
the count comes to what counting every piece at the end would."""

from __future__ import annotations

import orjson

from gateway.apis.chat import ChatCompletions
from gateway.core.flow import Flow
from gateway.core.tokens import Tokenizer
from gateway.enforcement.accounting import HOLD_MAX_BYTES, count_held, finish, generated_pieces
from policies import PolicyChain
from policies.ratelimit import Settlements

CHAT = ChatCompletions()


def pieces(texts: list[str]) -> list[bytes]:
    """Texts as the relay holds them: escaped JSON-string bodies."""
    return [orjson.dumps(t)[1:-1] for t in texts]


async def test_held_pieces_are_counted_let_go_and_added_up() -> None:
    tokenizer = Tokenizer()
    texts = [f"Piece {i} of a long answer, with \"quotes\" and é. " for i in range(3_000)]
    flow = Flow("r", "/v1/chat/completions", 0.0)
    flow.backend = "b0"
    flow.body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    everything = sum(tokenizer.count(t) for t in texts)
    first, rest = pieces(texts[:2_000]), pieces(texts[2_000:])
    flow.output += first
    await count_held(tokenizer, flow, "o200k_base")
    assert flow.output == [] and flow.output_size == 0  # the text is let go
    flow.output += rest  # the stream goes on
    await finish(tokenizer, Settlements(), CHAT, flow, PolicyChain([]), encoding="o200k_base")
    assert flow.usage is not None and flow.usage.estimated
    assert flow.usage.completion_tokens == everything
    assert flow.output_counted == sum(tokenizer.count(t) for t in generated_pieces(first))


async def test_a_second_hold_waits_for_the_first_count() -> None:
    tokenizer = Tokenizer()
    flow = Flow("r", "/v1/chat/completions", 0.0)
    flow.output += pieces(["one two three"])
    await count_held(tokenizer, flow, "o200k_base")
    running = flow.counting
    flow.output += pieces(["four five"])
    await count_held(tokenizer, flow, "o200k_base")  # one count at a time: these pieces wait
    assert flow.counting is running and flow.output == pieces(["four five"])
    assert running is not None
    await running
    await count_held(tokenizer, flow, "o200k_base")
    assert flow.counting is not None
    await flow.counting
    assert flow.output_counted == tokenizer.count("one two three") + tokenizer.count("four five")


async def test_a_stream_faster_than_its_count_waits_for_it() -> None:
    """Held past HOLD_MAX_BYTES while a count runs, the stream waits for that count
    rather than holding more: its memory stays bounded whatever the upstream's pace."""
    tokenizer = Tokenizer()
    flow = Flow("r", "/v1/chat/completions", 0.0)
    flow.output += pieces(["word " * 1_000] * 50)
    await count_held(tokenizer, flow, "o200k_base")
    first = flow.counting
    assert first is not None
    flow.output += pieces(["more " * 1_000])
    flow.output_size = HOLD_MAX_BYTES  # as much as may wait beside a running count
    await count_held(tokenizer, flow, "o200k_base")
    assert first.done()  # it was waited for, and the held pieces went to the next count
    assert flow.counting is not first and flow.output == []
    await flow.counting
    assert flow.output_counted == 50 * tokenizer.count("word " * 1_000) + tokenizer.count("more " * 1_000)
