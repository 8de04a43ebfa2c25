"""The simulator refuses what the real services refuse (gateway.simulator.anthropic.check,
gateway.simulator.app.chat_problem), so that a sloppy translation fails in tests: each
rule, in the services' own words."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.simulator import anthropic
from gateway.simulator.app import chat_problem

USE = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}
THOUGHT = "The user wants an answer. I should call f."
THINKING = {"type": "thinking", "thinking": THOUGHT, "signature": anthropic.signature(THOUGHT)}
LOOP = [{"role": "user", "content": "go"}, {"role": "assistant", "content": [THINKING, USE]},
        {"role": "user", "content": [RESULT]}]
ON = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize(("body", "says"), [
    ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens: Field required"),
    ({"max_tokens": 8, "messages": []}, "at least one message"),
    ({"max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}, 'Unexpected role "system"'),
    ({"max_tokens": 8, "messages": [{"role": "assistant", "content": "x"}]}, "roles must alternate"),
    ({"max_tokens": 8, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
     "roles must alternate"),
    ({"max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
     "text content blocks must be non-empty"),
    ({"max_tokens": 8, "messages": [{"role": "user", "content": [RESULT]}]}, "unexpected `tool_use_id`"),
    ({"max_tokens": 8, "messages": [*LOOP[:2], {"role": "user", "content": "and?"}]},
     "`tool_use` ids were found without `tool_result` blocks"),
    ({"max_tokens": 2048, "thinking": ON, "messages": [
        LOOP[0], {"role": "assistant", "content": [{**THINKING, "thinking": "edited"}, USE]}, LOOP[2]]},
     "Invalid `signature` in `thinking` block"),
    ({"max_tokens": 2048, "thinking": ON, "messages": [
        LOOP[0], {"role": "assistant", "content": [USE]}, LOOP[2]]}, "must start with a thinking block"),
    ({"max_tokens": 1024, "thinking": ON, "messages": LOOP[:1]}, "greater than `thinking.budget_tokens`"),
    ({"max_tokens": 2048, "thinking": ON, "temperature": 0.2, "messages": LOOP[:1]}, "`temperature`"),
])
def test_anthropic_refuses_as_the_api_does(body: dict[str, Any], says: str) -> None:
    problem = anthropic.check(body)
    assert problem is not None and says in problem


def test_anthropic_takes_a_proper_tool_loop_with_thinking() -> None:
    assert anthropic.check({"max_tokens": 2048, "thinking": ON, "messages": LOOP}) is None
    assert anthropic.check({"max_tokens": 8, "messages": [*LOOP[:1], {"role": "assistant", "content": ""}]}) \
        is None  # an empty final assistant turn (a prefill) is allowed


CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


def test_chat_tool_messages_answer_the_calls_before_them() -> None:
    hi = {"role": "user", "content": "hi"}
    answer = {"role": "tool", "tool_call_id": "call_1", "content": "x"}
    assert chat_problem({"messages": [hi, CALL, answer]}) is None
    stray = chat_problem({"messages": [hi, answer]})
    assert stray and "must be a response to a preceeding message with 'tool_calls'" in stray
    unanswered = chat_problem({"messages": [hi, CALL, hi]})
    assert unanswered and "did not have response messages: call_1" in unanswered
    assert chat_problem({"messages": [hi, CALL]})  # the end of the conversation too
