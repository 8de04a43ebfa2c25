"""Anthropic Messages client, Responses backend (gateway.translate.messages_responses):
the request as the backend gets it and what is refused; recorded Responses answers and
streams (tests/fixtures/contract) in, Anthropic messages and events out, in order with
their indexes, checked by the anthropic SDK's own accumulator and the Messages adapter;
reasoning carried out as thinking blocks and back as the same reasoning item."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from gateway.apis.anthropic import MESSAGES
from gateway.core.errors import UnsupportedParameter
from gateway.core.operations import Operation
from gateway.core.sse import Decoder
from gateway.translate import Target, plan, translator
from gateway.translate.messages_responses import MARK, TRANSLATOR

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "contract"
TARGET = Target("gpt-5-pro", "gpt-5-pro", 1024, "req-1", count_prompt=lambda: 111, created=1700000000)
EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def recorded(name: str) -> list[tuple[bytes | None, bytes]]:
    decoder = Decoder()
    return decoder.feed((FIXTURES / name).read_bytes()) + decoder.close()


def translate(events: Sequence[tuple[bytes | None, bytes]]) -> list[dict[str, Any]]:
    stream = TRANSLATOR.stream({}, TARGET)
    out = [e for name, data in events for e in stream.feed(name, data)] + stream.close()
    parsed = [orjson.loads(data) for _, data in out]
    # Every event is named as its type: the anthropic SDK dispatches on the name.
    assert [name for name, _ in out] == [p["type"].encode() for p in parsed]
    return parsed


def accumulate(events: list[dict[str, Any]]) -> Message:
    snapshot, buffers = None, {}  # type: ignore[var-annotated]
    for event in events:
        snapshot = accumulate_event(event=EVENTS.validate_python(event), current_snapshot=snapshot,
                                    json_bufs=buffers)
    assert snapshot is not None
    return snapshot


def test_registered_for_a_responses_only_backend() -> None:
    assert translator(Operation.MESSAGES, Operation.RESPONSES) is TRANSLATOR
    assert plan(Operation.MESSAGES, {Operation.RESPONSES}) == (Operation.RESPONSES, TRANSLATOR)


def test_request_field_by_field() -> None:
    body = {
        "model": "gpt-5-pro", "max_tokens": 32000, "stream": True, "temperature": 1, "top_p": 0.5,
        # What Claude Code sends every turn: keep every thinking block, which asks for nothing.
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Be careful."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look:", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/b.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                "data": "JVBE"}, "title": "spec.pdf"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Plan.", "signature": MARK + "gAAAenc1"},
                {"type": "redacted_thinking", "data": MARK + "gAAAenc2"},
                {"type": "thinking", "thinking": "Claude's own.", "signature": "EqQBCgIYAhIM"},
                {"type": "text", "text": "Reading the file."},
                {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"path": "a.py"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "print(1)", "is_error": False},
                {"type": "tool_result", "tool_use_id": "toolu_02",
                 "content": [{"type": "text", "text": "ok"}]},
                {"type": "text", "text": "Go on."}]},
            {"role": "assistant", "content": "Done."},
        ],
        "tools": [{"name": "Read", "description": "Read a file.", "cache_control": {"type": "ephemeral"},
                   "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
                  {"type": "custom", "name": "Ls", "input_schema": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "metadata": {"user_id": "user_" + "a" * 80 + "_session_x"}, "service_tier": "standard_only",
    }
    before = orjson.dumps(body)
    sent = TRANSLATOR.request(body, TARGET)
    assert orjson.dumps(body) == before
    assert sent == {
        "instructions": "You are Claude Code.\n\nBe careful.",
        "input": [
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Look:"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "auto"},
                {"type": "input_image", "image_url": "https://example.com/b.jpg", "detail": "auto"},
                {"type": "input_file", "filename": "spec.pdf",
                 "file_data": "data:application/pdf;base64,JVBE"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Plan."}],
             "encrypted_content": "gAAAenc1"},
            {"type": "reasoning", "summary": [], "encrypted_content": "gAAAenc2"},
            # Claude's thinking means nothing to this model: passed over (contract §8).
            {"type": "message", "role": "assistant", "content": "Reading the file."},
            {"type": "function_call", "call_id": "toolu_01", "name": "Read",
             "arguments": "{\"path\":\"a.py\"}"},
            {"type": "function_call_output", "call_id": "toolu_01", "output": "print(1)"},
            {"type": "function_call_output", "call_id": "toolu_02",
             "output": [{"type": "input_text", "text": "ok"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Go on."}]},
            {"type": "message", "role": "assistant", "content": "Done."},
        ],
        "tools": [{"type": "function", "name": "Read", "description": "Read a file.", "strict": False,
                   "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}},
                  {"type": "function", "name": "Ls", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": "required", "parallel_tool_calls": False,
        "reasoning": {"summary": "auto", "effort": "medium"}, "include": ["reasoning.encrypted_content"],
        # temperature 1 is every API's default, which reasoning models refuse to be sent.
        "max_output_tokens": 32000, "stream": True, "top_p": 0.5,
        "metadata": {"user_id": body["metadata"]["user_id"]},  # type: ignore[index]
        "service_tier": "default", "store": False,
    }


def test_a_system_turn_stands_where_claude_code_puts_it() -> None:
    """Claude Code 2.1 on a model it does not know sends its environment as a system turn
    after the user's: an input message of role system, in its place."""
    body = {"max_tokens": 64, "messages": [
        {"role": "user", "content": "Say hello"},
        {"role": "system", "content": [{"type": "text", "text": "# Environment",
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"}, {"role": "system", "content": "Be brief."}]}
    assert TRANSLATOR.request(body, TARGET)["input"] == [
        {"type": "message", "role": "user", "content": "Say hello"},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "# Environment"}]},
        {"type": "message", "role": "assistant", "content": "Hello."},
        {"type": "message", "role": "user", "content": "Again"},
        {"type": "message", "role": "system", "content": "Be brief."}]


SCHEMA = {"type": "json_schema", "schema": {"type": "object"}}


@pytest.mark.parametrize("options", [{"output_config": {"effort": "low", "format": SCHEMA}},
                                     {"output_config": {"effort": "low"}, "output_format": SCHEMA}])
def test_named_tool_structured_output_and_small_cap(options: dict[str, Any]) -> None:
    sent = TRANSLATOR.request({"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
                               "tool_choice": {"type": "tool", "name": "Read"}, **options}, TARGET)
    assert sent["tool_choice"] == {"type": "function", "name": "Read"} and "parallel_tool_calls" not in sent
    assert sent["text"] == {"format": {"type": "json_schema", "name": "output",
                                       "schema": {"type": "object"}, "strict": True}}
    assert sent["max_output_tokens"] == 16 and sent["reasoning"] == {"effort": "low"}
    assert "include" not in sent  # no thinking asked for: no reasoning to send back


@pytest.mark.parametrize(("field", "value", "param"), [
    ("stop_sequences", ["\n\nHuman:"], "stop_sequences"), ("top_k", 5, "top_k"),
    ("mcp_servers", [{"type": "url", "url": "https://x", "name": "x"}], "mcp_servers"),
    ("container", "c_1", "container"), ("made_up", 1, "made_up"),
    ("tools", [{"type": "web_search_20250305", "name": "web_search"}], "tools[0]"),
    ("tools", [{"name": "t", "input_schema": {}, "defer_loading": True}], "tools[0].defer_loading"),
    ("messages", [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}],
     "messages[0].content[0].source"),
    ("messages", [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"},
         "citations": {"enabled": True}}]}], "messages[0].content[0].source"),
    ("messages", [{"role": "user", "content": [{"type": "search_result", "source": "s"}]}],
     "messages[0].content[0]"),
    ("system", [{"type": "image", "source": {}}], "system[0]"),
    ("messages", [{"role": "user", "content": "hi"},
                  {"role": "system", "content": [{"type": "image", "source": {}}]}],
     "messages[1].content[0]"),
    ("messages", [{"role": "tool", "content": "hi"}], "messages[0].role"),
    ("output_format", {"type": "grammar"}, "output_format"),
    ("output_config", {"effort": "max"}, "output_config.effort"),
    ("output_config", {"task_budget": 5}, "output_config.task_budget"),
    ("context_management", {"edits": [{"type": "clear_tool_uses_20250919"}]}, "context_management.edits[0]"),
    ("context_management", {"edits": [{"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns",
                                                                                   "value": 1}}]},
     "context_management.edits[0]"),
])
def test_what_has_no_meaning_there_is_refused_naming_field_and_deployment(
        field: str, value: Any, param: str) -> None:
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(UnsupportedParameter) as refused:
        TRANSLATOR.request(body, TARGET)
    assert refused.value.param == param and "gpt-5-pro" in refused.value.message


def test_whole_answer_blocks_stop_reason_and_usage() -> None:
    body = orjson.loads((FIXTURES / "responses-create.json").read_bytes())
    body["usage"]["input_tokens_details"]["cached_tokens"] = 40
    answer = TRANSLATOR.response(body, TARGET)
    message = Message.model_validate(answer)  # the anthropic SDK reads it
    assert message.id == "msg_094ebefab06f6c100069efd5814cd881958cfa10878ca4446d"
    assert [b.type for b in message.content] == ["redacted_thinking", "text", "tool_use"]
    assert answer["content"][0]["data"] == MARK + body["output"][0]["encrypted_content"]
    assert answer["content"][2] == {"type": "tool_use", "id": "call_ALAJMWK9buNN7RXxxXbECcHa",
                                    "name": "get_capital", "input": {"country": "PotatoLand"}}
    assert message.stop_reason == "tool_use" and message.stop_sequence is None
    # Cached tokens once: out of input_tokens, into cache_read_input_tokens.
    assert answer["usage"] == {"input_tokens": 23, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 40, "output_tokens": 72}
    usage = MESSAGES.usage(answer)
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (63, 40, 72)
    # The whole answer goes back as the next turn's history: the same items return.
    again = TRANSLATOR.request({"max_tokens": 10, "messages": [
        {"role": "user", "content": "Capital?"}, {"role": "assistant", "content": answer["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_ALAJMWK9buNN7RXxxXbECcHa",
                                      "content": "Spudville"}]}]}, TARGET)
    assert again["input"][1] == {"type": "reasoning", "summary": [],
                                 "encrypted_content": body["output"][0]["encrypted_content"]}
    assert again["input"][3]["call_id"] == again["input"][4]["call_id"] == "call_ALAJMWK9buNN7RXxxXbECcHa"


@pytest.mark.parametrize(("status", "details", "parts", "reason"), [
    ("completed", None, [{"type": "output_text", "text": "Hi"}], "end_turn"),
    ("completed", None, [{"type": "refusal", "refusal": "No."}], "refusal"),
    ("incomplete", {"reason": "max_output_tokens"}, [{"type": "output_text", "text": "Hi"}], "max_tokens"),
    ("incomplete", {"reason": "content_filter"}, [], "refusal"),
])
def test_whole_answer_stop_reasons(status: str, details: Any, parts: list[Any], reason: str) -> None:
    body = {"id": "resp_1", "object": "response", "status": status, "incomplete_details": details,
            "output": [{"type": "message", "content": parts}],
            "usage": {"input_tokens": 5, "output_tokens": 1}}
    assert TRANSLATOR.response(body, TARGET)["stop_reason"] == reason


def test_text_stream_event_by_event() -> None:
    events = recorded("responses-stream.sse")
    out = translate(events)
    kinds = [e["type"] for e in out]
    deltas = [orjson.loads(d)["delta"] for _, d in events if b"output_text.delta" in d]
    assert kinds == ["message_start", "content_block_start", *["content_block_delta"] * len(deltas),
                     "content_block_stop", "message_delta", "message_stop"]
    start = out[0]["message"]
    assert start["id"] == "msg_68d93041848c819e90d610c34d125a8f03aa6e5a972b3b23"
    assert start["model"] == "gpt-5-2025-08-07" and start["content"] == []
    assert start["usage"]["input_tokens"] == 111  # target.count_prompt(), before any text
    assert out[1] == {"type": "content_block_start", "index": 0,
                      "content_block": {"type": "text", "text": ""}}
    assert [e["delta"]["text"] for e in out[2:-3]] == deltas and {e["index"] for e in out[1:-2]} == {0}
    assert out[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert out[-2]["usage"] == {"input_tokens": 114, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 0, "output_tokens": 15}
    final = accumulate(out)
    assert final.content[0].text == "Current weather in New York City, USA: Sunny."  # type: ignore[union-attr]
    # The relay's usage: the estimate from message_start, replaced by message_delta's.
    usage = MESSAGES.stream_usage(out[0], None)
    assert usage is not None and usage.prompt_tokens == 111
    usage = MESSAGES.stream_usage(out[-2], usage)
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (114, 15)


def test_function_call_stream_with_encrypted_reasoning_and_its_way_back() -> None:
    events = recorded("responses-stream-function-call.sse")
    out = translate(events)
    kinds = [(e["type"], e.get("index")) for e in out]
    assert kinds == [("message_start", None),
                     ("content_block_start", 0), ("content_block_stop", 0),
                     ("content_block_start", 1), *[("content_block_delta", 1)] * 12,
                     ("content_block_stop", 1), ("message_delta", None), ("message_stop", None)]
    done = next(orjson.loads(d) for _, d in events if b"output_item.done" in d)["item"]
    assert out[1]["content_block"] == {"type": "redacted_thinking", "data": MARK + done["encrypted_content"]}
    assert out[3]["content_block"] == {"type": "tool_use", "input": {}, "id": "call_5dp5Uj0Loqn1YcyIpqSq6sLX",
                                       "name": "get_weather"}
    assert {e["delta"]["type"] for e in out[4:16]} == {"input_json_delta"}
    assert out[-2]["delta"]["stop_reason"] == "tool_use" and out[-2]["usage"]["output_tokens"] == 155
    final = accumulate(out)
    assert final.content[1].input == {"location": "New York City, USA"}  # type: ignore[union-attr]
    history = [{"role": "user", "content": "Weather?"},
               {"role": "assistant", "content": [b.model_dump() for b in final.content]}]
    sent = TRANSLATOR.request({"max_tokens": 100, "messages": history}, TARGET)
    assert sent["input"][1:] == [
        {"type": "reasoning", "summary": [], "encrypted_content": done["encrypted_content"]},
        {"type": "function_call", "call_id": "call_5dp5Uj0Loqn1YcyIpqSq6sLX", "name": "get_weather",
         "arguments": "{\"location\":\"New York City, USA\"}"}]


def _event(kind: str, **fields: Any) -> tuple[bytes, bytes]:
    return kind.encode(), orjson.dumps({"type": kind, **fields})


def test_summaries_stream_as_a_thinking_block_with_its_signature() -> None:
    created = {"id": "resp_5", "object": "response", "model": "m"}
    reasoning = {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAsecret",
                 "summary": [{"type": "summary_text", "text": "Plan"},
                             {"type": "summary_text", "text": "More"}]}
    out = translate([
        _event("response.created", response=created),
        _event("response.output_item.added", output_index=0, item={"type": "reasoning", "summary": []}),
        _event("response.reasoning_summary_text.delta", output_index=0, summary_index=0, delta="Plan"),
        _event("response.reasoning_summary_text.delta", output_index=0, summary_index=1, delta="More"),
        _event("response.output_item.done", output_index=0, item=reasoning),
        _event("response.output_item.added", output_index=1, item={"type": "message", "content": []}),
        _event("response.content_part.added", output_index=1, content_index=0,
               part={"type": "output_text", "text": ""}),
        _event("response.output_text.delta", output_index=1, content_index=0, delta="Hi"),
        _event("response.content_part.done", output_index=1, content_index=0, part={}),
        _event("response.output_item.done", output_index=1, item={"type": "message"}),
        _event("response.completed", response={**created, "status": "completed", "usage": {
            "input_tokens": 50, "input_tokens_details": {"cached_tokens": 20}, "output_tokens": 9}}),
    ])
    assert [(e["type"], e.get("index")) for e in out] == [
        ("message_start", None), ("content_block_start", 0), ("content_block_delta", 0),
        ("content_block_delta", 0), ("content_block_delta", 0), ("content_block_stop", 0),
        ("content_block_start", 1), ("content_block_delta", 1), ("content_block_stop", 1),
        ("message_delta", None), ("message_stop", None)]
    assert out[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert [e["delta"] for e in out[2:5]] == [
        {"type": "thinking_delta", "thinking": "Plan"}, {"type": "thinking_delta", "thinking": "\n\nMore"},
        {"type": "signature_delta", "signature": MARK + "gAAAsecret"}]
    assert out[-2]["usage"]["cache_read_input_tokens"] == 20 and out[-2]["usage"]["input_tokens"] == 30
    final = accumulate(out)
    assert final.content[0].thinking == "Plan\n\nMore"  # type: ignore[union-attr]
    back = TRANSLATOR.request({"max_tokens": 9, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [b.model_dump() for b in final.content]}]}, TARGET)
    assert back["input"][1] == {"type": "reasoning", "encrypted_content": "gAAAsecret",
                                "summary": [{"type": "summary_text", "text": "Plan\n\nMore"}]}


def test_error_streams_end_in_anthropics_error_event() -> None:
    out = translate(recorded("responses-error-stream.sse"))
    assert [e["type"] for e in out] == ["message_start", "error"]  # once, response.failed adds nothing
    assert out[1]["error"]["type"] == "api_error" and "quota" in out[1]["error"]["message"]
    created = {"id": "resp_6", "object": "response", "model": "m"}
    limited = translate([_event("response.created", response=created),
                         _event("error", error={"code": "rate_limit_exceeded", "message": "slow"})])
    assert limited[-1] == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
    cut = translate([_event("response.created", response=created),
                     _event("response.output_text.delta", output_index=0, content_index=0, delta="Hi")])
    assert [e["type"] for e in cut] == ["message_start", "content_block_start",
                                        "content_block_delta", "error"]
    assert translate([]) == []


def test_azure_data_only_stream() -> None:
    """Azure's recorded stream, data lines only (no `event:` names): the JSON's type is read."""
    lines = [line for line in (FIXTURES / "azure-openai-responses-stream.jsonl").read_bytes().splitlines()
             if line]
    for skipped in (0, 1):  # and a server that skips response.created
        out = translate([(None, line) for line in lines[skipped:]])
        assert [e["type"] for e in out].count("message_start") == 1
        final = accumulate(out)
        assert final.content[0].text and final.stop_reason == "end_turn"  # type: ignore[union-attr]
        assert final.model == "gpt-5.1"
