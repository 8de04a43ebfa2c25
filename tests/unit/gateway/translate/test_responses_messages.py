"""gateway.translate.responses_messages against recorded wire samples: Responses requests
in, Messages requests out (the recorded Anthropic request rebuilt from its Responses
equivalent); Messages answers and streams in, Responses answers and event sequences out,
checked against the SDK's types and the recorded native Responses stream; Claude's
thinking blocks and signatures through a round trip; stop reasons, usage, refusals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.core.errors import UnsupportedParameter
from gateway.translate import opaque
from gateway.translate.responses_messages import TRANSLATOR
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


def test_the_recorded_messages_request_from_its_responses_equivalent() -> None:
    recorded = fixture("anthropic-messages-request.json")
    turns = recorded["messages"]
    call = turns[1]["content"][1]
    body = {
        "model": "claude", "instructions": recorded["system"], "max_output_tokens": 4096,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": turns[0]["content"][0]["text"]}]},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": turns[1]["content"][0]["text"]}]},
            {"type": "function_call", "call_id": call["id"], "name": call["name"], "arguments": "{}"},
            {"type": "function_call_output", "call_id": call["id"], "output": "Japan"}],
        "tools": [{"type": "function", "name": t["name"], "description": t["description"],
                   "parameters": t["input_schema"], **({"strict": True} if t.get("strict") else {})}
                  for t in recorded["tools"]],
        "tool_choice": "auto",
    }
    expected = {k: v for k, v in recorded.items() if k not in ("model", "stream")}
    for block in expected["messages"][2]["content"]:
        del block["is_error"]  # false is the default, and Responses has no such flag
    assert TRANSLATOR.request(body, TARGET) == expected


def test_the_recorded_responses_requests() -> None:
    first, second = (fixture("responses-create-request.json")[k]["body"]
                     for k in ("instructions_and_function_tool", "input_text_parts"))
    assert TRANSLATOR.request(first, TARGET) == {
        "system": first["instructions"], "max_tokens": 1024,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is the capital of PotatoLand?"}]}],
        "tools": [{"name": "get_capital", "input_schema": first["tools"][0]["parameters"], "strict": True}],
        "tool_choice": {"type": "auto"}}
    assert TRANSLATOR.request(second, TARGET) == {  # an empty instructions string is no system
        "max_tokens": 1024, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "source": {"type": "url",
                                         "url": second["input"][0]["content"][1]["image_url"]}}]}]}


def test_system_and_developer_items_anywhere_join_the_system_prompt_and_images_go_as_blocks() -> None:
    body = {"instructions": "Be brief.", "input": [
        {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]},
        {"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Go"}],
        "user": "u-1", "temperature": 0.2, "stream": True, "parallel_tool_calls": False,
        "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "f"}}
    out = TRANSLATOR.request(body, TARGET)
    assert out["system"] == [{"type": "text", "text": t} for t in
                             ("Be brief.", "Use metric units.", "Answer in French.")]
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "text", "text": "Go"}]}]
    assert out["metadata"] == {"user_id": "u-1"} and out["temperature"] == 0.2 and out["stream"] is True
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert out["tool_choice"] == {"type": "tool", "name": "f", "disable_parallel_tool_use": True}


@pytest.mark.parametrize("effort,limit,expected", [
    ("medium", None, {"max_tokens": 1024 + 4096, "thinking": {"type": "enabled", "budget_tokens": 4096}}),
    ("high", 10_000, {"max_tokens": 10_000, "thinking": {"type": "enabled", "budget_tokens": 9_999}}),
    ("low", 8_000, {"max_tokens": 8_000, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
    ("minimal", 500, {"max_tokens": 500}),
])
def test_reasoning_effort_becomes_a_thinking_budget(effort: str, limit: int | None,
                                                    expected: dict[str, Any]) -> None:
    body = {"input": "x", "reasoning": {"effort": effort, "summary": "auto"},
            **({"max_output_tokens": limit} if limit else {})}
    out = TRANSLATOR.request(body, TARGET)
    assert {k: out[k] for k in ("max_tokens", "thinking") if k in out} == expected


@pytest.mark.parametrize("body,param", [
    ({"reasoning": {"effort": "low"}, "max_output_tokens": 1000}, "reasoning.effort"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}, "text.format"),
    ({"tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
    ({"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}, "tool_choice"),
    ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "compaction", "encrypted_content": "gAAAAB-openai"}]}, "input[1].encrypted_content"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]},
     "input[0].arguments"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"frequency_penalty": 1}, "frequency_penalty"),
])
def test_what_cannot_map_is_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedParameter) as refused:
        TRANSLATOR.request({"input": "x", **body}, TARGET)
    assert refused.value.param == param and "the-alias" in refused.value.message


def test_the_recorded_answer_with_text_and_a_tool_call() -> None:
    recorded = fixture("anthropic-messages.json")
    body = {"input": "x", "tools": [{"type": "function", "name": "test_tool"}], "metadata": {"a": "b"}}
    out = valid_response(TRANSLATOR.answer(recorded, body, TARGET))
    assert out["id"] == "resp_gw_" + TARGET.request_id and out["model"] == recorded["model"]
    assert out["status"] == "completed" and out["incomplete_details"] is None
    assert out["metadata"] == {"a": "b"} and out["tools"] == body["tools"]
    message, call = out["output"]
    assert message["content"][0]["text"] == recorded["content"][0]["text"]
    assert call == {"id": call["id"], "type": "function_call", "status": "completed",
                    "arguments": '{"value":"test"}', "call_id": "toolu_011LF2VkWpAfJnTKJcmh1PNf",
                    "name": "test_tool"}
    ours = [item_keys(i) for i in out["output"]]
    theirs = [item_keys(i) for i in fixture("responses-create.json")["output"][1:]]
    assert ours == theirs  # a message and a function call, field for field as OpenAI's
    assert out["usage"] == {"input_tokens": 415,
                            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                            "output_tokens": 76, "output_tokens_details": {"reasoning_tokens": 0},
                            "total_tokens": 491}


def test_cache_reads_and_writes_are_input_once() -> None:
    out = TRANSLATOR.answer(fixture("anthropic-messages-cache-usage.json"), {}, TARGET)
    assert out["usage"]["input_tokens"] == 3 + 1111 + 418
    assert out["usage"]["input_tokens_details"] == {"cached_tokens": 1111, "cache_write_tokens": 418}


@pytest.mark.parametrize("reason,status,why", [
    ("max_tokens", "incomplete", "max_output_tokens"), ("refusal", "incomplete", "content_filter"),
    ("end_turn", "completed", None), ("stop_sequence", "completed", None),
    ("model_context_window_exceeded", "incomplete", "max_output_tokens")])
def test_stop_reasons(reason: str, status: str, why: str | None) -> None:
    answer = {**fixture("anthropic-messages-cache-usage.json"), "stop_reason": reason}
    out = valid_response(TRANSLATOR.answer(answer, {}, TARGET))
    assert out["status"] == status
    assert out["incomplete_details"] == ({"reason": why} if why else None)
    assert out["output"][0]["status"] == ("incomplete" if status == "incomplete" else "completed")


def test_a_text_stream_has_the_native_event_sequence() -> None:
    ours = translate_stream(TRANSLATOR, {"input": "x", "stream": True}, sse("anthropic-messages-stream.sse"))
    assert shape(ours) == shape(native("responses-stream.sse"))
    text = "".join(e["delta"] for e in ours if e["type"] == "response.output_text.delta")
    final = valid_response(ours[-1]["response"])
    assert final["output"][0]["content"][0]["text"] == text and final["usage"]["output_tokens"] == 38
    assert final["model"] == "claude-haiku-4-5-20251001"  # the model that answered


def test_a_tool_use_stream_event_by_event() -> None:
    ours = translate_stream(TRANSLATOR, {"input": "x", "stream": True},
                            sse("anthropic-messages-stream-tool-use.sse"))
    assert [e["type"] for e in ours] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * 2, "response.output_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.output_item.added", *["response.function_call_arguments.delta"] * 4,
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert [e.get("output_index") for e in ours[2:9]] == [0] * 7
    assert {e.get("output_index") for e in ours[9:16]} == {1}
    call = ours[-1]["response"]["output"][1]
    assert call["call_id"] == "toolu_01NRLabsLyVHZPKxbKvkfSMn"
    assert call["arguments"] == '{"location": "Paris"}'
    assert {e["item_id"] for e in ours if "item_id" in e} == {i["id"] for i in ours[-1]["response"]["output"]}
    native_call = native("responses-stream-function-call.sse")[4:-1]  # from its function_call's added
    assert shape(ours[9:-1]) == shape(native_call)


def test_thinking_with_its_signature_comes_back_to_claude_unchanged() -> None:
    events = sse("anthropic-messages-stream-thinking.sse")
    ours = translate_stream(TRANSLATOR, {"input": "x", "stream": True}, events)
    kinds = [e["type"] for e in ours]
    assert kinds[2:4] == ["response.output_item.added", "response.reasoning_summary_part.added"]
    assert "response.reasoning_summary_text.done" in kinds and "response.reasoning_summary_part.done" in kinds
    reasoning = ours[-1]["response"]["output"][0]
    recorded = [orjson.loads(d) for _, d in events]
    deltas = [e["delta"] for e in recorded if e["type"] == "content_block_delta"]
    thinking = "".join(d.get("thinking", "") for d in deltas)
    signature = "".join(d.get("signature", "") for d in deltas)
    assert reasoning["summary"] == [{"type": "summary_text", "text": thinking}]
    block = {"type": "thinking", "thinking": thinking, "signature": signature}
    assert opaque.decode(opaque.CLAUDE, reasoning["encrypted_content"]) == block
    # The next turn, with the output as history: Claude gets its block first, as it made it.
    follow = TRANSLATOR.request({"input": [{"role": "user", "content": "x"}, *ours[-1]["response"]["output"],
                                           {"role": "user", "content": "and?"}]}, TARGET)
    assert follow["messages"][1]["content"][0] == block
    assert [t["role"] for t in follow["messages"]] == ["user", "assistant", "user"]


def test_redacted_thinking_and_a_whole_thinking_answer() -> None:
    answer = {"model": "claude", "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 9},
              "content": [{"type": "redacted_thinking", "data": "EmwKAh"},
                          {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                          {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]}
    out = valid_response(TRANSLATOR.answer(answer, {}, TARGET))
    redacted, thought, call = out["output"]
    assert redacted["summary"] == [] and opaque.decode(opaque.CLAUDE, redacted["encrypted_content"]) == \
        answer["content"][0]
    assert thought["summary"][0]["text"] == "hmm" and call["arguments"] == "{}"
    history = TRANSLATOR.request({"input": [{"role": "user", "content": "x"}, *out["output"],
                                            {"type": "function_call_output", "call_id": "toolu_1",
                                             "output": "ok"}]}, TARGET)
    assert history["messages"][1]["content"] == answer["content"]
    assert history["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                  "content": "ok"}]


def test_an_error_event_mid_stream_fails_the_response() -> None:
    start = sse("anthropic-messages-stream.sse")[:2]
    ours = translate_stream(TRANSLATOR, {"input": "x", "stream": True},
                            start + sse("anthropic-messages-stream-error.sse"))
    assert [e["type"] for e in ours] == ["response.created", "response.in_progress", "error",
                                         "response.failed"]
    assert ours[2]["error"]["code"] == "overloaded_error"
    assert ours[3]["response"]["status"] == "failed"
    assert ours[3]["response"]["error"] == {"code": "server_error", "message": "Overloaded"}


def test_a_stream_cut_before_its_stop_reason_fails() -> None:
    cut = sse("anthropic-messages-stream.sse")[:6]
    ours = translate_stream(TRANSLATOR, {"input": "x", "stream": True}, cut)
    assert ours[-2]["type"] == "error" and ours[-1]["type"] == "response.failed"
