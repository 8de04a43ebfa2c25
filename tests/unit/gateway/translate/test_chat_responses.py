"""Chat Completions client, Responses backend (gateway.translate.chat_responses): the
request as the backend gets it, field by field and what is refused; recorded Responses
answers and streams (tests/fixtures/contract) in, chat completions and chunks out, in
order, checked by the openai SDK's own stream accumulator and the chat adapter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.apis.chat import CHAT
from gateway.core.errors import UnsupportedParameter
from gateway.core.operations import Operation
from gateway.core.sse import Decoder
from gateway.translate import Target, plan, translator
from gateway.translate.chat_responses import TRANSLATOR

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "contract"
TARGET = Target("codex", "codex-mini", 1024, "req-1", created=1700000000)


def recorded(name: str) -> list[tuple[bytes | None, bytes]]:
    decoder = Decoder()
    return decoder.feed((FIXTURES / name).read_bytes()) + decoder.close()


def translate(events: Sequence[tuple[bytes | None, bytes]], body: dict[str, Any] | None = None
              ) -> list[dict[str, Any]]:
    stream = TRANSLATOR.stream(body or {}, TARGET)
    out = [e for name, data in events for e in stream.feed(name, data)] + stream.close()
    assert all(name is None for name, _ in out)  # chat chunks are bare `data:` events
    return [orjson.loads(data) for _, data in out]


def accumulate(chunks: list[dict[str, Any]]) -> ChatCompletion:
    state: ChatCompletionStreamState = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.get_final_completion()


def test_registered_for_a_responses_only_backend() -> None:
    assert translator(Operation.CHAT, Operation.RESPONSES) is TRANSLATOR
    assert plan(Operation.CHAT, {Operation.RESPONSES}) == (Operation.RESPONSES, TRANSLATOR)
    assert plan(Operation.CHAT, {Operation.CHAT, Operation.RESPONSES}) == (Operation.CHAT, None)


def test_request_field_by_field() -> None:
    body = {
        "model": "codex", "stream": True, "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": "Let me look.", "reasoning_content": "hmm",
             "tool_calls": [
                 {"id": "call_1", "type": "function",
                  "function": {"name": "lookup", "arguments": "{\"q\":\"a\"}"}},
                 {"id": "call_2", "type": "function",
                  "function": {"name": "lookup", "arguments": "{\"q\":\"b\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "a dog"}]},
            {"role": "system", "content": "Now answer."},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up.",
                                                     "parameters": {"type": "object"}}},
                  {"type": "function", "function": {"name": "noargs", "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "parallel_tool_calls": True, "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 300,
        "max_tokens": 50, "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "schema": {"type": "object"}, "strict": True}},
        "metadata": {"k": "v"}, "user": "u-1", "reasoning_effort": "high", "n": 1, "stop": None,
        "verbosity": "low", "prompt_cache_key": "pc", "safety_identifier": "s", "service_tier": "auto",
    }
    before = orjson.dumps(body)
    sent = TRANSLATOR.request(body, TARGET)
    assert orjson.dumps(body) == before  # the client's body is left as it was (failover resends it)
    assert sent == {
        "instructions": "Be terse.\n\nUse tools.",
        "input": [
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is in these?"},
                {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=",
                 "detail": "auto"}]},
            {"type": "message", "role": "assistant", "content": "Let me look."},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{\"q\":\"a\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "lookup", "arguments": "{\"q\":\"b\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
            {"type": "function_call_output", "call_id": "call_2", "output": "a dog"},
            {"type": "message", "role": "system", "content": "Now answer."},
        ],
        "tools": [{"type": "function", "name": "lookup", "description": "Look up.",
                   "parameters": {"type": "object"}, "strict": False},
                  {"type": "function", "name": "noargs", "parameters": {"type": "object", "properties": {}},
                   "strict": True}],
        "tool_choice": {"type": "function", "name": "lookup"},
        "parallel_tool_calls": True, "temperature": 0.2, "top_p": 0.9, "max_output_tokens": 300,
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"},
                            "strict": True}, "verbosity": "low"},
        "metadata": {"k": "v"}, "user": "u-1", "reasoning": {"effort": "high"}, "stream": True,
        "prompt_cache_key": "pc", "safety_identifier": "s", "service_tier": "auto", "store": False,
    }


def test_small_caps_and_plain_choices() -> None:
    sent = TRANSLATOR.request({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1,
                               "temperature": 1, "top_p": 1,
                               "tool_choice": "required", "response_format": {"type": "json_object"}},
                              TARGET)
    assert sent["max_output_tokens"] == 16  # the Responses API's least
    assert sent["tool_choice"] == "required" and sent["text"] == {"format": {"type": "json_object"}}
    assert sent["input"] == [{"type": "message", "role": "user", "content": "hi"}]
    assert "instructions" not in sent and sent["store"] is False
    # The defaults, which reasoning models refuse to be sent, are not.
    assert "temperature" not in sent and "top_p" not in sent


@pytest.mark.parametrize(("field", "value", "param"), [
    ("n", 2, "n"), ("logprobs", True, "logprobs"), ("top_logprobs", 3, "top_logprobs"),
    ("modalities", ["text", "audio"], "modalities"), ("audio", {"voice": "alloy", "format": "wav"}, "audio"),
    ("stop", ["\n"], "stop"), ("seed", 7, "seed"), ("logit_bias", {"50256": -100}, "logit_bias"),
    ("presence_penalty", 0.5, "presence_penalty"), ("store", True, "store"),
    ("functions", [{"name": "f"}], "functions"), ("web_search_options", {}, "web_search_options"),
    ("prediction", {"type": "content", "content": "x"}, "prediction"), ("made_up", 1, "made_up"),
    ("messages", [{"role": "user", "content": "hi", "name": "bob"}], "messages[0].name"),
    ("messages", [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
     "messages[0].content[0]"),
    ("messages", [{"role": "function", "name": "f", "content": "x"}], "messages[0].role"),
    ("tools", [{"type": "custom", "custom": {"name": "c"}}], "tools[0]"),
    ("stream_options", {"include_usage": True, "other": 1}, "stream_options.other"),
])
def test_what_has_no_meaning_there_is_refused_naming_field_and_deployment(
        field: str, value: Any, param: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(UnsupportedParameter) as refused:
        TRANSLATOR.request(body, TARGET)
    assert refused.value.param == param and "codex" in refused.value.message
    assert refused.value.status == 400


def test_whole_answer_with_reasoning_message_and_call() -> None:
    body = orjson.loads((FIXTURES / "responses-create.json").read_bytes())
    answer = TRANSLATOR.response(body, TARGET)
    completion = ChatCompletion.model_validate(answer)  # the openai SDK reads it
    assert completion.id == "chatcmpl-094ebefab06f6c100069efd5814cd881958cfa10878ca4446d"
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the capital lookup tool for \"PotatoLand.\""
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_ALAJMWK9buNN7RXxxXbECcHa", "get_capital", "{\"country\":\"PotatoLand\"}")]
    assert answer["usage"] == {"prompt_tokens": 63, "completion_tokens": 72, "total_tokens": 135,
                               "prompt_tokens_details": {"cached_tokens": 0},
                               "completion_tokens_details": {"reasoning_tokens": 29}}
    usage = CHAT.usage(answer)
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens) == (63, 72, 29)


@pytest.mark.parametrize(("status", "details", "reason"), [
    ("incomplete", {"reason": "max_output_tokens"}, "length"),
    ("incomplete", {"reason": "content_filter"}, "content_filter"),
    ("completed", None, "stop"),
])
def test_whole_answer_stop_reasons(status: str, details: Any, reason: str) -> None:
    body = {"id": "resp_1", "object": "response", "status": status, "incomplete_details": details,
            "model": "m", "output": [{"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Hi"}, {"type": "refusal", "refusal": "No."}]}],
            "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 8}, "output_tokens": 2}}
    answer = TRANSLATOR.response(body, TARGET)
    assert answer["choices"][0]["finish_reason"] == reason
    assert answer["choices"][0]["message"]["refusal"] == "No."
    # Cached tokens are inside the prompt count on both APIs: reported, not added.
    usage = CHAT.usage(answer)
    assert usage is not None and (usage.prompt_tokens, usage.cached_tokens) == (10, 8)


def test_reasoning_summaries_become_reasoning_content() -> None:
    body = {"id": "resp_2", "object": "response", "status": "completed", "output": [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "First."},
                                          {"type": "summary_text", "text": "Second."}]},
        {"type": "message", "content": [{"type": "output_text", "text": "A"}]},
        {"type": "message", "content": [{"type": "output_text", "text": "B"}]}]}
    message = TRANSLATOR.response(body, TARGET)["choices"][0]["message"]
    assert message["reasoning_content"] == "First.\n\nSecond."
    assert message["content"] == "A\n\nB"


def test_a_failed_whole_answer_is_the_gateways_502() -> None:
    from gateway.core.errors import UpstreamError

    body = {"object": "response", "status": "failed", "output": [],
            "error": {"code": "server_error", "message": "boom"}}
    with pytest.raises(UpstreamError, match="boom"):
        TRANSLATOR.response(body, TARGET)


def test_text_stream_chunk_by_chunk() -> None:
    events = recorded("responses-stream.sse")
    chunks = translate(events)
    ids = {c["id"] for c in chunks}
    assert ids == {"chatcmpl-68d93041848c819e90d610c34d125a8f03aa6e5a972b3b23"}
    assert {c["model"] for c in chunks} == {"gpt-5-2025-08-07"} and chunks[0]["created"] == 1759064129
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    deltas = [orjson.loads(d)["delta"] for _, d in events if b"output_text.delta" in d]
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]] == deltas  # one chunk each, in order
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 114
    final = accumulate(chunks)
    assert final.choices[0].message.content == "Current weather in New York City, USA: Sunny."
    assert final.usage is not None and final.usage.completion_tokens == 15
    # The relay reads the usage from the last chunk, and drops it when only it asked.
    usage = CHAT.stream_usage(chunks[-1], None)
    assert usage is not None and usage.prompt_tokens == 114
    assert CHAT.drop_event(chunks[-1], True) and not CHAT.drop_event(chunks[-2], True)


def test_function_call_stream_with_reasoning() -> None:
    chunks = translate(recorded("responses-stream-function-call.sse"))
    opened = chunks[1]["choices"][0]["delta"]["tool_calls"]
    assert opened == [{"index": 0, "id": "call_5dp5Uj0Loqn1YcyIpqSq6sLX", "type": "function",
                       "function": {"name": "get_weather", "arguments": ""}}]
    pieces = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[2:-2]]
    assert all(p.keys() == {"index", "function"} and p["index"] == 0 for p in pieces)
    assert "".join(p["function"]["arguments"] for p in pieces) == "{ \"location\": \"New York City, USA\" }"
    assert len(pieces) == 12  # each delta as it came, none repeated from the .done events
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 128}
    final = accumulate(chunks)
    call = (final.choices[0].message.tool_calls or [])[0]
    assert call.id == "call_5dp5Uj0Loqn1YcyIpqSq6sLX"
    assert call.function.arguments == "{ \"location\": \"New York City, USA\" }"  # type: ignore[union-attr]


def _event(kind: str, **fields: Any) -> tuple[bytes, bytes]:
    return kind.encode(), orjson.dumps({"type": kind, **fields})


def test_parallel_calls_summaries_and_whole_arguments() -> None:
    created = {"id": "resp_3", "object": "response", "model": "m", "created_at": 5}
    events = [
        _event("response.created", response=created),
        _event("response.reasoning_summary_text.delta", output_index=0, summary_index=0, delta="Think"),
        _event("response.reasoning_summary_text.delta", output_index=0, summary_index=1, delta="More"),
        _event("response.output_item.added", output_index=1, item={
            "type": "function_call", "call_id": "call_a", "name": "f", "arguments": ""}),
        _event("response.function_call_arguments.delta", output_index=1, delta="{}"),
        _event("response.output_item.done", output_index=1, item={
            "type": "function_call", "call_id": "call_a", "name": "f", "arguments": "{}"}),
        _event("response.output_item.added", output_index=2, item={
            "type": "function_call", "call_id": "call_b", "name": "g", "arguments": ""}),
        # A server that sends the arguments only whole.
        _event("response.function_call_arguments.done", output_index=2, arguments="{\"x\":1}"),
        _event("response.output_item.done", output_index=2, item={
            "type": "function_call", "call_id": "call_b", "name": "g", "arguments": "{\"x\":1}"}),
        _event("response.completed", response={**created, "status": "completed", "usage": None}),
    ]
    chunks = translate(events)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[1:3] == [{"reasoning_content": "Think"}, {"reasoning_content": "\n\nMore"}]
    final = accumulate(chunks)
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.arguments) for c in calls] == [("call_a", "{}"), ("call_b", "{\"x\":1}")]  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"
    assert chunks[-1]["choices"]  # no usage upstream: no usage chunk


def test_incomplete_and_failed_streams() -> None:
    created = {"id": "resp_4", "object": "response", "model": "m"}
    chunks = translate([_event("response.created", response=created),
                        _event("response.output_text.delta", output_index=0, content_index=0, delta="Hi"),
                        _event("response.incomplete", response={
                            **created, "status": "incomplete",
                            "incomplete_details": {"reason": "max_output_tokens"}})])
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    recorded_error = translate(recorded("responses-error-stream.sse"))
    assert recorded_error[0]["choices"][0]["delta"]["role"] == "assistant"
    assert recorded_error[1:] == [{"error": {  # once: the response.failed after it adds nothing
        "message": recorded_error[1]["error"]["message"], "type": "server_error",
        "code": "insufficient_quota", "param": None}}]
    cut = translate([_event("response.created", response=created)])
    assert cut[-1]["error"]["code"] == "upstream_error"  # ended before its terminal event
    assert translate([]) == []  # no event at all: the relay's to report


def test_azure_data_only_stream() -> None:
    """Azure's recorded stream, data lines only (no `event:` names): the JSON's type is read."""
    lines = (FIXTURES / "azure-openai-responses-stream.jsonl").read_bytes().splitlines()
    chunks = translate([(None, line) for line in lines if line])
    final = accumulate(chunks)
    assert final.choices[0].message.content and final.choices[0].finish_reason == "stop"
    assert final.model == "gpt-5.1" and final.usage is not None
    # A server that skips response.created opens the stream at in_progress, once.
    opened = translate([(None, line) for line in lines[1:] if line])
    assert sum(1 for c in opened if c["choices"] and "role" in c["choices"][0]["delta"]) == 1
    assert accumulate(opened).choices[0].message.content == final.choices[0].message.content
