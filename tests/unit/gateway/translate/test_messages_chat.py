"""An Anthropic Messages client on a Chat Completions backend
(gateway.translate.messages_chat): recorded Messages requests in chat's shape; recorded
chat answers and streams (tests/fixtures/contract: tool calls, parallel calls, Azure's
filtered stream with its usage chunk) in Anthropic's, compared with golden samples,
the event order checked as Claude Code's parser wants it, and read back by the anthropic
SDK's own accumulator; what cannot map refused by name."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from anthropic._models import construct_type
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent

from gateway.core.errors import UnsupportedParameter, UpstreamError
from gateway.core.operations import Operation
from gateway.translate import plan, translator
from gateway.translate.base import Event, Target
from gateway.translate.chat_messages import TRANSLATOR as THERE
from gateway.translate.messages_chat import TRANSLATOR
from tests.unit.gateway.translate.anthropic_wire import events, golden, golden_json, recorded, sse, translate

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PDF = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoK"


def target(model: str = "gpt-4o", prompt: int = 42) -> Target:
    return Target("gpt-4o", model, 1024, "req_0123", lambda: prompt, 1764000000)


def test_a_recorded_tool_loop_in_chat_shape() -> None:
    body = TRANSLATOR.request(recorded("anthropic-messages-request.json"), target())
    golden_json("messages-request-to-chat.json", body)
    assert body["messages"][0] == {"role": "system", "content": (
        "Always call `country_source` first, then call `capital_lookup` with that result before replying.")}
    assert body["messages"][2]["tool_calls"] == [{"id": "toolu_01Ttepb9joVoQFHP568v7UAL", "type": "function",
                                                  "function": {"name": "country_source", "arguments": "{}"}}]
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "toolu_01Ttepb9joVoQFHP568v7UAL",
                                   "content": "Japan"}
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "country_source", "strict": True,
        "parameters": {"additionalProperties": False, "properties": {}, "type": "object"}}}
    assert body["tool_choice"] == "auto" and body["max_tokens"] == 4096
    assert "stream" not in body


def test_images_documents_thinking_and_the_options() -> None:
    request = {
        "model": "gpt-5-mini", "max_tokens": 2048, "stream": True,
        "system": [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "More rules."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "document", "title": "a.pdf",
                 "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
                {"type": "text", "text": "What is in these?", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Look first.", "signature": "sig"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "screenshot", "input": {"zoom": 2},
                 "caller": {"type": "direct"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False, "content": [
                    {"type": "text", "text": "Here it is."},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
                {"type": "text", "text": "Well?"}]},
        ],
        "tools": [{"name": "screenshot", "description": "Take one.", "cache_control": {"type": "ephemeral"},
                   "input_schema": {"type": "object", "properties": {"zoom": {"type": "integer"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"], "temperature": 0.5, "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 8000}, "service_tier": "standard_only",
        "output_format": {"type": "json_schema", "schema": {"type": "object"}},
    }
    kept = json.loads(json.dumps(request))
    body = TRANSLATOR.request(request, target("gpt-5-mini"))
    assert request == kept  # untouched: failover may send it to a backend of another API next
    golden_json("messages-request-rich-to-chat.json", body)
    system, user, assistant, tool, after = body["messages"]
    assert system == {"role": "system", "content": [{"type": "text", "text": "Rules."},
                                                    {"type": "text", "text": "More rules."}]}
    assert user["content"][0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert user["content"][1] == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    assert user["content"][2] == {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}",
                                                           "filename": "a.pdf"}}
    # Claude's signed thinking is for Claude: a chat model gets the text and the calls.
    assert assistant == {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "screenshot", "arguments": '{"zoom":2}'}}]}
    assert tool == {"role": "tool", "tool_call_id": "toolu_1", "content": "Here it is."}
    # The image the tool returned follows in a user message (chat tool messages carry text).
    assert after == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "Well?"}]}
    assert body["max_completion_tokens"] == 2048 and "max_tokens" not in body  # an OpenAI reasoning model
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert body["stop"] == ["END"] and body["user"] == "u-1" and body["reasoning_effort"] == "medium"
    assert body["service_tier"] == "default"
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "output", "schema": {"type": "object"}, "strict": True}}
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (2048, "low"), (4000, "medium"),
                                                (8192, "medium"), (10000, "high"), (64000, "high")])
def test_a_thinking_budget_becomes_an_effort(budget: int, effort: str) -> None:
    body = TRANSLATOR.request({"max_tokens": 100_000, "messages": [{"role": "user", "content": "hi"}],
                               "thinking": {"type": "enabled", "budget_tokens": budget}}, target())
    assert body["reasoning_effort"] == effort


HI = [{"role": "user", "content": "hi"}]
EPHEMERAL = {"type": "ephemeral"}


def test_what_claude_code_sends_on_a_model_it_does_not_know() -> None:
    """Claude Code 2.1 on a GPT or Mistral alias (recorded, texts shortened): adaptive
    thinking, an effort, context editing that keeps all thinking, cache breakpoints, and
    its environment as a system message after the user's turn."""
    request = {
        "model": "gpt-5-mini", "max_tokens": 32000, "stream": True,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
                   {"type": "text", "text": "You are a Claude agent.", "cache_control": EPHEMERAL}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>Hi</system-reminder>"},
                                         {"type": "text", "text": "Say hello in one line"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment\nPlatform: linux",
                                            "cache_control": EPHEMERAL}]}],
        "tools": [{"name": "Bash", "description": "Run a command.", "input_schema": {
            "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}],
        "metadata": {"user_id": '{"device_id":"d1","session_id":"s1"}'},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
    }
    body = TRANSLATOR.request(request, target("gpt-5-mini"))
    assert body["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
                                       {"type": "text", "text": "You are a Claude agent."}]},
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>Hi</system-reminder>"},
                                     {"type": "text", "text": "Say hello in one line"}]},
        {"role": "system", "content": "# Environment\nPlatform: linux"}]
    assert body["reasoning_effort"] == "high"  # the effort; adaptive thinking asks for no budget
    assert body["max_completion_tokens"] == 32000 and body["user"] == '{"device_id":"d1","session_id":"s1"}'
    assert body["tools"][0]["function"]["name"] == "Bash"
    assert body["stream_options"] == {"include_usage": True}
    assert "thinking" not in body and "context_management" not in body and "output_config" not in body
    # Adaptive thinking alone: the model's own effort, none sent; an effort wins over a budget.
    alone = TRANSLATOR.request({"max_tokens": 64, "messages": HI, "thinking": {"type": "adaptive"}}, target())
    assert "reasoning_effort" not in alone
    both = TRANSLATOR.request({"max_tokens": 9000, "messages": HI, "output_config": {"effort": "low"},
                               "thinking": {"type": "enabled", "budget_tokens": 8000}}, target())
    assert both["reasoning_effort"] == "low"
    # Clearing thinking, whatever it keeps: a chat backend never gets Claude's thinking.
    turns = {"edits": [{"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}}]}
    assert TRANSLATOR.request({"max_tokens": 64, "messages": HI, "context_management": turns}, target())
    structured = TRANSLATOR.request({"max_tokens": 64, "messages": HI, "output_config": {
        "format": {"type": "json_schema", "schema": {"type": "object"}}}}, target())
    assert structured["response_format"]["json_schema"]["schema"] == {"type": "object"}


@pytest.mark.parametrize(("extra", "field"), [
    ({"top_k": 5}, "top_k"), ({"container": "c"}, "container"), ({"mcp_servers": []}, "mcp_servers"),
    ({"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}},
     "context_management.edits[0]"),
    ({"context_management": {"edits": [], "other": 1}}, "context_management.other"),
    ({"a_new_field": 1}, "a_new_field"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
    ({"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]}, "tools[0]"),
    ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0]"),
    ({"tool_choice": {"type": "auto", "extra": 1}}, "tool_choice.extra"),
    ({"metadata": {"user_id": "u", "team": "t"}}, "metadata.team"),
    ({"thinking": {"type": "sometimes"}}, "thinking"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2048, "interleaved": True}}, "thinking.interleaved"),
    ({"output_config": {"effort": "max"}}, "output_config.effort"),
    ({"output_config": {"task_budget": 10}}, "output_config.task_budget"),
    ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format"),
    ({"output_format": {"type": "json_object"}}, "output_format"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [*HI, {"role": "system", "content": [{"type": "image", "source": {}}]}]},
     "messages[1].content[0]"),
    ({"messages": [*HI, {"role": "assistant", "content": "Sure, here"}]}, "messages[1]"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
     "messages[0].content[0].source"),
    ({"messages": [{"role": "user", "content": [{"type": "search_result", "source": "s"}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "assistant", "content": [{"type": "server_tool_use", "id": "s"}]}]},
     "messages[0].content[0].type"),
])
def test_what_cannot_map_is_refused_by_name(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(UnsupportedParameter) as err:
        TRANSLATOR.request({"max_tokens": 64, "messages": HI, **extra}, target())
    assert err.value.param == field and "gpt-4o" in err.value.message


def test_whole_answers_golden() -> None:
    azure = TRANSLATOR.response(recorded("azure-openai-chat.json"), target())
    golden_json("messages-from-azure-openai-chat.json", azure)
    Message.model_validate(azure)  # the anthropic SDK reads it
    assert azure["stop_reason"] == "end_turn" and azure["content"][0]["text"].startswith("Hello!")
    assert azure["usage"] == {"input_tokens": 13, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 0, "output_tokens": 30}
    mistral = TRANSLATOR.response(recorded("azure-inference-chat.json"), target())
    golden_json("messages-from-azure-inference-chat.json", mistral)
    assert mistral["model"] == "mistral-large-2411" and mistral["usage"]["output_tokens"] == 139


def test_tool_calls_reasoning_and_cached_tokens_in_a_whole_answer() -> None:
    answer = TRANSLATOR.response({
        "id": "chatcmpl-1", "model": "deepseek-r1", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "reasoning_content": "Think.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_tokens_details": {"cached_tokens": 60}}}, target())
    assert answer["content"] == [{"type": "thinking", "thinking": "Think.", "signature": ""},
                                 {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
                                 {"type": "tool_use", "id": "call_2", "name": "g", "input": {}}]
    assert answer["stop_reason"] == "tool_use"
    # Cached tokens counted once: 40 fresh + 60 read is chat's prompt of 100.
    assert answer["usage"] == {"input_tokens": 40, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 60, "output_tokens": 20}
    with pytest.raises(UpstreamError):
        TRANSLATOR.response({"choices": [{"message": {"tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{broken"}}]}}]}, target())
    assert "usage" not in TRANSLATOR.response({"choices": [{"message": {"content": "x"}}]}, target())


@pytest.mark.parametrize(("finish", "reason"), [("stop", "end_turn"), ("length", "max_tokens"),
                                                ("tool_calls", "tool_use"), ("function_call", "tool_use"),
                                                ("content_filter", "refusal"), (None, "end_turn")])
def test_stop_reasons(finish: str | None, reason: str) -> None:
    answer = TRANSLATOR.response({"choices": [{"finish_reason": finish, "message": {"content": "x"}}]},
                                 target())
    assert answer["stop_reason"] == reason


def _checked(out: list[Event]) -> Any:
    """The event order Anthropic streams have (and Claude Code's and the SDK's parsers
    insist on), then the anthropic SDK's own accumulation of the events."""
    kinds = [name.decode() for name, _ in out if name]
    assert len(kinds) == len(out)  # every event named
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    open_index = None
    opened = 0
    for name, data in out[1:-2]:
        event = orjson.loads(data)
        assert event["type"] == name.decode()
        if event["type"] == "content_block_start":
            assert open_index is None and event["index"] == opened
            open_index, opened = event["index"], opened + 1
        elif event["type"] == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
        else:
            assert event["type"] == "content_block_delta" and event["index"] == open_index
    assert open_index is None
    snapshot = None
    buffers: dict[int, bytes] = {}
    for _, data in out:
        event = construct_type(type_=RawMessageStreamEvent, value=orjson.loads(data))
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    return snapshot


@pytest.mark.parametrize("name", ["chat-completions-stream-tool-calls.sse",
                                  "chat-completions-stream-parallel-tool-calls.sse",
                                  "azure-openai-chat-stream.sse"])
def test_streams_golden_and_in_order(name: str) -> None:
    out = translate(TRANSLATOR.stream({}, target()), events(name))
    golden("messages-from-" + name, sse(out))
    final = _checked(out)
    start = orjson.loads(out[0][1])
    assert start["message"]["usage"]["input_tokens"] == 42  # the prompt's count, before the backend's
    source = [orjson.loads(d) for _, d in events(name) if d != b"[DONE]"]
    usage = next(e["usage"] for e in reversed(source) if e.get("usage"))
    assert (final.usage.input_tokens, final.usage.output_tokens) == (usage["prompt_tokens"],
                                                                    usage["completion_tokens"])
    calls = {}
    for chunk in source:
        for choice in chunk.get("choices") or []:
            for call in choice["delta"].get("tool_calls") or []:
                calls.setdefault(call["index"], {"id": None, "arguments": ""})
                calls[call["index"]]["id"] = calls[call["index"]]["id"] or call.get("id")
                calls[call["index"]]["arguments"] += call["function"].get("arguments") or ""
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.id, u.input) for u in uses] == [(c["id"], json.loads(c["arguments"])) for c in calls.values()]
    assert final.stop_reason == ("tool_use" if calls else "end_turn")
    if not calls:
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in source if c.get("choices"))
        assert final.content[0].text == text


def _accumulate(out: list[Event]) -> Any:
    snapshot = None
    buffers: dict[int, bytes] = {}
    for name, data in out:
        if name != b"ping":
            event = construct_type(type_=RawMessageStreamEvent, value=orjson.loads(data))
            snapshot = accumulate_event(event=event, current_snapshot=snapshot,  # type: ignore[arg-type]
                                        json_bufs=buffers)
    return snapshot


@pytest.mark.parametrize("name", ["anthropic-messages-stream-tool-use.sse",
                                  "anthropic-messages-stream-thinking.sse", "anthropic-messages-stream.sse"])
def test_a_claude_stream_through_chat_and_back_is_the_same_message(name: str) -> None:
    """Both pairs chained (a Messages client, a chat hop, Claude): text, tool calls with
    their ids and arguments, thinking with its signature, stop reason and usage survive."""
    chat = translate(THERE.stream({"stream_options": {"include_usage": True}}, target()), events(name))
    back = translate(TRANSLATOR.stream({}, target()), [*chat, (None, b"[DONE]")])
    again, original = _checked(back), _accumulate(events(name))
    assert [b.model_dump() for b in again.content] == [b.model_dump() for b in original.content]
    assert (again.id, again.model, again.stop_reason) == (original.id, original.model, original.stop_reason)
    assert again.usage.output_tokens == original.usage.output_tokens
    assert again.usage.input_tokens + again.usage.cache_read_input_tokens == original.usage.input_tokens \
        + original.usage.cache_read_input_tokens + original.usage.cache_creation_input_tokens


def _feed(chunks: list[dict[str, Any] | bytes], prompt: int = 42) -> list[Event]:
    stream = TRANSLATOR.stream({}, target(prompt=prompt))
    return translate(stream, [(None, c if isinstance(c, bytes) else orjson.dumps(c)) for c in chunks])


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-9", "model": "deepseek-r1",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_reasoning_streams_as_a_thinking_block_and_no_usage_is_estimated() -> None:
    out = _feed([_chunk({"role": "assistant", "reasoning_content": "Hm"}),
                 _chunk({"reasoning_content": "m."}),
                 _chunk({"content": "Yes"}), _chunk({"content": "."}), _chunk({}, "stop"), b"[DONE]"])
    final = _checked(out)
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Hmm." and final.content[1].text == "Yes."
    # No usage from the backend: message_start's prompt count stays; the output is
    # estimated from the pieces streamed.
    assert orjson.loads(out[-2][1])["usage"] == {"output_tokens": 4}
    assert (final.usage.input_tokens, final.usage.output_tokens) == (42, 4)


def test_interleaved_calls_errors_and_a_stream_without_done() -> None:
    first = {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": ""}}
    second = {"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}
    out = _feed([_chunk({"tool_calls": [first]}), _chunk({"tool_calls": [second]}),
                 _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x": 1}'}}]}),
                 _chunk({}, "tool_calls")])  # no [DONE]: the stream's end closes it
    names = [orjson.loads(d)["type"] for _, d in out]
    assert names[-2:] == ["message_delta", "message_stop"]
    deltas = [orjson.loads(d) for _, d in out if orjson.loads(d)["type"] == "content_block_delta"]
    assert [(d["index"], d["delta"]["partial_json"]) for d in deltas] == [(1, "{}"), (0, '{"x": 1}')]
    error = _feed([_chunk({"content": "Hi"}), {"error": {"message": "boom", "type": "server_error"}}])
    assert orjson.loads(error[-1][1]) == {"type": "error", "error": {"type": "api_error", "message": "boom"}}
    assert error[-1][0] == b"error"
    assert _feed([]) == []  # nothing at all: the relay reports it


def test_the_pair_is_listed_and_planned() -> None:
    assert translator(Operation.MESSAGES, Operation.CHAT) is TRANSLATOR
    assert plan(Operation.MESSAGES, {Operation.CHAT, Operation.COMPLETIONS}) == (Operation.CHAT, TRANSLATOR)
    assert plan(Operation.MESSAGES, {Operation.MESSAGES, Operation.CHAT}) == (Operation.MESSAGES, None)
