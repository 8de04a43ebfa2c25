"""gateway.translate.responses_chat against recorded wire samples: Responses requests in,
chat requests out; chat answers (Azure OpenAI's, Mistral's on Foundry) and streams (text,
one and two tool calls, a filtered one) in, Responses answers and event sequences out,
checked against the SDK's types and the recorded native Responses streams; stop
reasons, usage with cached tokens counted once, reasoning_content, refusals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.errors import UnsupportedParameter
from gateway.translate.responses_chat import TRANSLATOR
from tests.unit.gateway.translate.wire import (
    TARGET,
    fixture,
    item_keys,
    native,
    shape,
    sse,
    translate_stream,
    valid_response,
)

STREAM = {"input": "x", "stream": True}


def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, bytes]:
    return None, orjson.dumps({"id": "c", "model": "m", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]})


def test_the_recorded_responses_requests() -> None:
    first, second = (fixture("responses-create-request.json")[k]["body"]
                     for k in ("instructions_and_function_tool", "input_text_parts"))
    tool = first["tools"][0]
    assert TRANSLATOR.request(first, TARGET) == {
        "messages": [{"role": "system", "content": first["instructions"]},
                     {"role": "user", "content": "What is the capital of PotatoLand?"}],
        "tools": [{"type": "function", "function": {"name": "get_capital",
                                                    "parameters": tool["parameters"], "strict": True}}],
        "tool_choice": "auto"}
    image = second["input"][0]["content"][1]
    assert TRANSLATOR.request(second, TARGET) == {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hello"},
        {"type": "image_url", "image_url": {"url": image["image_url"], "detail": "auto"}}]}]}


def test_settings_and_a_tool_history() -> None:
    body = {"instructions": "Be brief.", "max_output_tokens": 50, "temperature": 0.3, "top_p": 0.9,
            "reasoning": {"effort": "low"}, "safety_identifier": "u-9", "stream": True,
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"}, "parallel_tool_calls": True,
            "text": {"format": {"type": "json_schema", "name": "out", "strict": True,
                                "schema": {"type": "object"}}, "verbosity": "low"},
            "prompt_cache_key": "k", "service_tier": "auto", "store": False,
            "include": ["reasoning.encrypted_content"], "metadata": {"a": "b"},
            "input": [{"role": "user", "content": "Q"},
                      {"type": "message", "role": "assistant",
                       "content": [{"type": "output_text", "text": "Let me see."}]},
                      {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
                      {"type": "function_call", "call_id": "call_2", "name": "f", "arguments": '{"a":1}'},
                      {"type": "function_call_output", "call_id": "call_1", "output": "one"},
                      {"type": "function_call_output", "call_id": "call_2",
                       "output": [{"type": "input_text", "text": "two"}]},
                      {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"},
                      {"role": "developer", "content": "Now answer."}]}
    assert TRANSLATOR.request(body, TARGET) == {
        "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "Let me see.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "one"},
            {"role": "tool", "tool_call_id": "call_2", "content": "two"},
            {"role": "system", "content": "Now answer."}],
        "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 50,
        "temperature": 0.3, "top_p": 0.9, "reasoning_effort": "low", "user": "u-9",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "out", "schema": {"type": "object"}, "strict": True}}}


@pytest.mark.parametrize("body,param", [
    ({"tools": [{"type": "image_generation"}]}, "tools[0].type"),
    ({"tools": [{"type": "computer_use_preview", "display_width": 1, "display_height": 1,
                 "environment": "linux"}]}, "tools[0].type"),
    ({"include": ["file_search_call.results"]}, "include[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]},
     "input[0].content[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": [
        {"type": "input_image", "image_url": "https://x/y.png"}]}]}, "input[0]"),
    ({"truncation": "auto"}, "truncation"), ({"top_logprobs": 3}, "top_logprobs"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"), ({"max_tool_calls": 2}, "max_tool_calls"),
    ({"reasoning": {"effort": "enormous"}}, "reasoning.effort"),
    ({"input": [{"type": "compaction_trigger"}]}, "input[0].type"),
])
def test_what_cannot_map_is_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedParameter) as refused:
        TRANSLATOR.request({"input": "x", **body}, TARGET)
    assert refused.value.param == param and "the-alias" in refused.value.message


@pytest.mark.parametrize("name", ["azure-openai-chat.json", "azure-inference-chat.json"])
def test_the_recorded_answers(name: str) -> None:
    recorded = fixture(name)
    out = valid_response(TRANSLATOR.answer(recorded, {"input": "x", "instructions": "I"}, TARGET))
    assert out["model"] == recorded["model"] and out["instructions"] == "I"
    assert out["status"] == "completed" and len(out["output"]) == 1
    message = out["output"][0]
    assert item_keys(message) == item_keys(fixture("responses-create.json")["output"][1])
    assert message["content"][0]["text"] == recorded["choices"][0]["message"]["content"]
    counts = recorded["usage"]
    assert out["usage"]["input_tokens"] == counts["prompt_tokens"]
    assert out["usage"]["output_tokens"] == counts["completion_tokens"]
    assert out["usage"]["total_tokens"] == counts["total_tokens"]


def test_cached_and_reasoning_tokens_are_parts_of_the_counts() -> None:
    answer = {"model": "m", "choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "Partly", "reasoning_content": "First, think."}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
                  "prompt_tokens_details": {"cached_tokens": 64},
                  "completion_tokens_details": {"reasoning_tokens": 30}}}
    out = valid_response(TRANSLATOR.answer(answer, {}, TARGET))
    assert out["usage"] == {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 64,
                                                                         "cache_write_tokens": 0},
                            "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 30},
                            "total_tokens": 140}
    reasoning, message = out["output"]
    assert reasoning["type"] == "reasoning" and reasoning["summary"][0]["text"] == "First, think."
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": "max_output_tokens"}
    assert message["status"] == "incomplete"


def test_a_whole_answer_with_tool_calls_and_a_refusal() -> None:
    answer = {"model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
            {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    out = valid_response(TRANSLATOR.answer(answer, {}, TARGET))
    assert [(i["call_id"], i["name"], i["arguments"]) for i in out["output"]] == [
        ("call_a", "f", '{"x":1}'), ("call_b", "g", "{}")]
    refused = {"model": "m", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I can't help with that."}}]}
    out = valid_response(TRANSLATOR.answer(refused, {}, TARGET))
    assert out["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]
    assert out["usage"] is None  # the backend reported none: the gateway counts


def test_a_text_stream_has_the_native_event_sequence() -> None:
    ours = translate_stream(TRANSLATOR, STREAM, sse("azure-openai-chat-stream.sse"))
    assert shape(ours) == shape(native("responses-stream.sse"))
    text = "".join(e["delta"] for e in ours if e["type"] == "response.output_text.delta")
    final = valid_response(ours[-1]["response"])
    assert final["output"][0]["content"][0]["text"] == text and final["usage"]["output_tokens"] == 28
    assert final["model"] == "gpt-4o-2024-08-06"


def test_a_tool_call_stream_has_the_native_event_sequence() -> None:
    ours = translate_stream(TRANSLATOR, STREAM, sse("chat-completions-stream-tool-calls.sse"))
    recorded = native("responses-stream-function-call.sse")
    assert shape(ours[2:]) == shape(recorded[4:])  # from the function call's output_item.added
    arguments = "".join(e["delta"] for e in ours if e["type"] == "response.function_call_arguments.delta")
    call = ours[-1]["response"]["output"][0]
    assert call["arguments"] == arguments == '{"city":"Edinburgh","country":"UK","units":"c"}'
    assert call["call_id"] == "call_c91SqDXlYFuETYv8mUHzz6pp" and call["name"] == "GetWeatherArgs"
    assert item_keys(call) == item_keys(recorded[-1]["response"]["output"][1])


def test_parallel_tool_calls_stream_one_item_after_the_other() -> None:
    ours = translate_stream(TRANSLATOR, STREAM, sse("chat-completions-stream-parallel-tool-calls.sse"))
    kinds = [(e["type"], e.get("output_index")) for e in ours if e["type"].startswith("response.output_item")]
    assert kinds == [("response.output_item.added", 0), ("response.output_item.done", 0),
                     ("response.output_item.added", 1), ("response.output_item.done", 1)]
    calls = ours[-1]["response"]["output"]
    assert [(c["call_id"], c["name"]) for c in calls] == [
        ("call_JMW1whyEaYG438VE1OIflxA2", "GetWeatherArgs"),
        ("call_DNYTawLBoN8fj3KN6qU9N1Ou", "get_stock_price")]
    for call in calls:
        orjson.loads(call["arguments"])  # whole JSON each, however the fragments were cut


def test_a_filtered_stream_ends_incomplete() -> None:
    ours = translate_stream(TRANSLATOR, STREAM, sse("azure-openai-stream-filtered.sse"))
    assert ours[-1]["type"] == "response.incomplete"
    assert ours[-1]["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert ours[-2]["item"]["status"] == "incomplete"


def test_every_event_of_a_reasoning_then_text_stream() -> None:
    events = [chunk({"role": "assistant", "content": ""}), chunk({"reasoning_content": "Hm"}),
              chunk({"reasoning_content": "m."}), chunk({"content": "Yes"}), chunk({}, "stop"),
              (None, orjson.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})),
              (None, b"[DONE]")]
    ours = translate_stream(TRANSLATOR, STREAM, events)
    assert [(e["type"], e.get("output_index")) for e in ours] == [
        ("response.created", None), ("response.in_progress", None),
        ("response.output_item.added", 0), ("response.reasoning_summary_part.added", 0),
        ("response.reasoning_summary_text.delta", 0), ("response.reasoning_summary_text.delta", 0),
        ("response.reasoning_summary_text.done", 0), ("response.reasoning_summary_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1), ("response.content_part.added", 1),
        ("response.output_text.delta", 1), ("response.output_text.done", 1),
        ("response.content_part.done", 1), ("response.output_item.done", 1),
        ("response.completed", None)]
    assert ours[6]["text"] == "Hmm." and ours[-1]["response"]["usage"]["total_tokens"] == 5


def test_a_stream_that_stops_without_a_reason_fails_and_an_error_chunk_too() -> None:
    cut = translate_stream(TRANSLATOR, STREAM, [chunk({"content": "Hel"})])
    assert [e["type"] for e in cut][-2:] == ["error", "response.failed"]
    failed = translate_stream(TRANSLATOR, STREAM, [chunk({"content": "Hel"}), (None, orjson.dumps(
        {"error": {"code": "rate_limit_exceeded", "message": "Slow down"}}))])
    assert failed[-2]["error"]["code"] == "rate_limit_exceeded"
    assert failed[-1]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "Slow down"}


TEXTS = st.text(max_size=40).filter(bool)


@given(st.lists(TEXTS, min_size=2, max_size=6))
def test_text_chunks_take_the_short_way_to_the_same_bytes(texts: list[str]) -> None:
    """A chunk of text alone after the first is made from bytes kept for its part (the
    fast path); each must be the event the general path dumps, text and sequence alike,
    and the part's whole text the pieces joined."""
    events = [chunk({"role": "assistant", "content": ""}),
              *[chunk({"content": t}) for t in texts], chunk({}, "stop")]
    stream = TRANSLATOR.stream(STREAM, TARGET)
    out = [e for name, data in events for e in stream.feed(name, data)] + stream.close()
    deltas = [data for name, data in out if name == b"response.output_text.delta"]
    assert len(deltas) == len(texts)
    for data, text in zip(deltas, texts, strict=True):
        event = orjson.loads(data)
        assert data == orjson.dumps({
            "type": "response.output_text.delta", "sequence_number": event["sequence_number"],
            "item_id": event["item_id"], "output_index": 0, "content_index": 0,
            "delta": text, "logprobs": []})
    numbers = [orjson.loads(data)["sequence_number"] for _, data in out]
    assert numbers == list(range(len(out)))
    done = next(orjson.loads(d) for n, d in out if n == b"response.output_text.done")
    assert done["text"] == "".join(texts)


def test_a_chunk_with_more_than_text_takes_the_general_way() -> None:
    """Text beside a finish, a refusal or a usage is not the fast path's: each is kept."""
    events = [chunk({"content": "a"}), chunk({"content": "b", "refusal": "no"}),
              (None, orjson.dumps({"model": "m2", "choices": [
                  {"index": 0, "delta": {"content": "c"}, "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 1, "completion_tokens": 3}}))]
    ours = translate_stream(TRANSLATOR, STREAM, events)
    assert [e["type"] for e in ours if e["type"].endswith(".delta")] == [
        "response.output_text.delta", "response.output_text.delta", "response.refusal.delta",
        "response.output_text.delta"]
    assert ours[-1]["response"]["model"] == "m2"
    assert ours[-1]["response"]["usage"]["output_tokens"] == 3


def _general(kind: str, seq: int, item: str, output: int, content: int, text: str) -> bytes:
    """The delta event as the general path makes it, built here independently."""
    return orjson.dumps({"type": kind, "sequence_number": seq, "item_id": item,
                         "output_index": output, "content_index": content, "delta": text,
                         "logprobs": []})


def test_the_kept_bytes_follow_each_new_part_and_item() -> None:
    """Text, a refusal, text again, a tool call, then text once more: every text delta
    names the part and the item it belongs to now, never those the bytes were first
    kept for; the model a later chunk names is the final response's."""
    call = {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": "f", "arguments": "{}"}}]}
    events = [chunk({"content": "a"}), chunk({"content": "b"}), chunk({"refusal": "no"}),
              chunk({"content": "c"}), chunk({"content": "d"}), chunk(call),
              chunk({"content": "e"}), chunk({"content": "f"}),
              (None, orjson.dumps({"model": "m2", "choices": [
                  {"index": 0, "delta": {"content": "g"}, "finish_reason": None}]})),
              (None, orjson.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))]
    stream = TRANSLATOR.stream(STREAM, TARGET)
    out = [e for name, data in events for e in stream.feed(name, data)] + stream.close()
    parsed = [orjson.loads(data) for _, data in out]
    items = {e["output_index"]: e["item"]["id"] for e in parsed
             if e["type"] == "response.output_item.added"}
    where: dict[str, tuple[int, int]] = {}  # text -> (output index, content index)
    for event in parsed:
        if event["type"] == "response.output_text.delta":
            where[event["delta"]] = (event["output_index"], event["content_index"])
    assert where == {"a": (0, 0), "b": (0, 0), "c": (0, 2), "d": (0, 2),
                     "e": (2, 0), "f": (2, 0), "g": (2, 0)}
    for (_, data), event in zip(out, parsed, strict=True):
        if event["type"] == "response.output_text.delta":
            output, content = where[event["delta"]]
            assert data == _general("response.output_text.delta", event["sequence_number"],
                                    items[output], output, content, event["delta"])
    assert parsed[-1]["response"]["model"] == "m2"
    texts = [part.get("text") for item in parsed[-1]["response"]["output"]
             for part in item.get("content") or []]
    assert texts == ["ab", None, "cd", "efg"]


@pytest.mark.parametrize("last", [
    {"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "length"}]},
    {"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": None}],
     "usage": {"prompt_tokens": 1, "completion_tokens": 7}},
    {"choices": [{"index": 1, "delta": {"content": "b"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": None},
                 {"index": 1, "delta": {"content": "x"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": None}],
     "error": {"code": "boom", "message": "failed"}},
], ids=["finish", "usage", "another-choice", "two-choices", "error"])
def test_a_text_chunk_with_anything_more_is_read_in_full(last: dict[str, Any]) -> None:
    """Each of these carries text and something the fast path must not pass over."""
    finished = last["choices"][0]["finish_reason"] is not None
    usage = [] if "usage" in last else [(None, orjson.dumps(
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 9}}))]
    events = [chunk({"content": "a"}), (None, orjson.dumps({"model": "m", **last})),
              *([] if finished else [chunk({}, "stop")]), *usage]
    ours = translate_stream(TRANSLATOR, STREAM, events)
    final = ours[-1]
    text = "".join(e["delta"] for e in ours if e["type"] == "response.output_text.delta")
    if "error" in last:
        assert [e["type"] for e in ours][-2:] == ["error", "response.failed"]
    elif last["choices"][0]["index"] == 1 and len(last["choices"]) == 1:
        assert text == "a"  # another choice's text is not this answer's
    elif "usage" in last:
        assert text == "ab" and final["response"]["usage"]["output_tokens"] == 7
    elif last["choices"][0]["finish_reason"] == "length":
        assert text == "ab" and final["type"] == "response.incomplete"
    else:
        assert text == "ab"  # the second choice's text is not this answer's
