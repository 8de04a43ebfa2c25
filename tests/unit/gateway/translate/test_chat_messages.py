"""A Chat Completions client on an Anthropic backend (gateway.translate.chat_messages):
a chat request as the openai SDK sends it, in Messages' shape; Claude's recorded answers
and streams (tests/fixtures/contract) in chat's, compared with golden samples, event
order checked, and read back by the openai SDK's own stream accumulator; what cannot
map refused by name; and a property: a chat request translated to Messages and its
answer translated back keep every mappable field."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.core.errors import UnsupportedParameter
from gateway.core.operations import Operation
from gateway.translate import plan, translator
from gateway.translate.chat_messages import TRANSLATOR
from gateway.translate.messages_chat import TRANSLATOR as BACK
from tests.unit.gateway.translate.anthropic_wire import (
    events,
    golden,
    golden_json,
    recorded,
    sse,
    target,
    translate,
)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True}}
THINKING = {"type": "thinking", "thinking": "Paris first.", "signature": "EvMCCkYICxgCKkCHP2cS"}
REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}
# What the openai SDK sends for a second turn of a tool loop with extended thinking.
REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "messages": [
        {"role": "developer", "content": "Answer in French."},
        {"role": "system", "content": [{"type": "text", "text": "Long shared rules.",
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Weather in Paris and Lyon?"},
        {"role": "user", "content": [
            {"type": "text", "text": "Here is a map.", "cache_control": {"type": "ephemeral"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}}]},
        {"role": "assistant", "content": None, "refusal": None, "audio": None, "function_call": None,
         "reasoning_content": "Paris first.", "thinking_blocks": [{**THINKING, "index": 0}, REDACTED],
         "tool_calls": [
             {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather",
                                                                   "arguments": "{\"city\": \"Paris\"}"}},
             {"id": "toolu_01B", "type": "function", "function": {"name": "get_weather",
                                                                   "arguments": "{\"city\": \"Lyon\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": [{"type": "text", "text": "21C"}]},
        {"role": "user", "content": "And tomorrow?", "name": "jane"},
    ],
    "tools": [TOOL], "tool_choice": "auto", "parallel_tool_calls": False,
    "max_completion_tokens": 4096, "reasoning_effort": "low", "stop": "END", "top_p": 0.9,
    "user": "user-42", "seed": 7, "stream": True, "stream_options": {"include_usage": True},
}


def test_a_tool_loop_with_thinking_in_messages_shape() -> None:
    client = json.loads(json.dumps(REQUEST))
    body = TRANSLATOR.request(client, target())
    assert client == REQUEST  # untouched: failover may send it to a backend of another API next
    golden_json("chat-request-to-messages.json", body)
    assert body["system"] == [{"type": "text", "text": "Answer in French."},
                              {"type": "text", "text": "Long shared rules.",
                               "cache_control": {"type": "ephemeral"}}]
    turns = body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]  # merged, alternating
    assert turns[0]["content"][1]["cache_control"] == {"type": "ephemeral"}
    assert turns[0]["content"][2]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}
    assert turns[0]["content"][3]["source"] == {"type": "url", "url": "https://example.com/map.png"}
    # Thinking blocks first, unchanged (but the stream's `index`), then the calls, ids kept.
    assert turns[1]["content"][:2] == [THINKING, REDACTED]
    assert [b.get("id") for b in turns[1]["content"][2:]] == ["toolu_01A", "toolu_01B"]
    assert turns[1]["content"][2]["input"] == {"city": "Paris"}
    # Tool results in order in one user turn, before what the user said next.
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "tool_result", "text"]
    assert turns[2]["content"][1] == {"type": "tool_result", "tool_use_id": "toolu_01B",
                                      "content": [{"type": "text", "text": "21C"}]}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 4096 and body["stop_sequences"] == ["END"] and body["top_p"] == 0.9
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["tools"] == [{"name": "get_weather", "description": "Current weather.", "strict": True,
                              "input_schema": TOOL["function"]["parameters"]}]  # type: ignore[index]
    assert body["metadata"] == {"user_id": "user-42"} and body["stream"] is True
    assert "seed" not in body and "stream_options" not in body


@pytest.mark.parametrize(("effort", "limit", "budget", "max_tokens"), [
    ("minimal", None, 1024, 2048), ("low", None, 2048, 3072), ("medium", None, 8192, 9216),
    ("high", None, 16384, 17408), ("xhigh", None, 32768, 33792),
    ("high", 4096, 4095, 4096),  # the client's limit bounds the budget
])
def test_reasoning_effort_becomes_a_thinking_budget(effort: str, limit: int | None, budget: int,
                                                    max_tokens: int) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": effort,
            **({"max_tokens": limit} if limit else {})}
    out = TRANSLATOR.request(body, target())
    assert out["thinking"] == {"type": "enabled", "budget_tokens": budget} and out["max_tokens"] == max_tokens
    assert "thinking" not in TRANSLATOR.request({**body, "reasoning_effort": "none"}, target())


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("extra", "field"), [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"top_logprobs": 3}, "top_logprobs"),
    ({"modalities": ["text", "audio"]}, "modalities"), ({"audio": {"voice": "alloy"}}, "audio"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
     "response_format"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"), ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"functions": [{"name": "f"}]}, "functions"), ({"web_search_options": {}}, "web_search_options"),
    ({"temperature": 1.5}, "temperature"), ({"store": True}, "store"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"reasoning_effort": "low", "max_tokens": 512}, "reasoning_effort"),
    ({"some_new_field": 1}, "some_new_field"),
    ({"tools": [{"type": "custom", "custom": {"name": "grammar"}}]}, "tools[0]"),
    ({"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "assistant", "content": "I start."}]}, "messages"),
    ({"messages": [*HI, {"role": "assistant", "content": "Sure, here"}]}, "messages[1]"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    ({"messages": [*HI, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
])
def test_what_cannot_map_is_refused_by_name(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(UnsupportedParameter) as err:
        TRANSLATOR.request({"messages": HI, **extra}, target())
    assert err.value.param == field and "claude-sonnet-4-5" in err.value.message


def test_defaults_and_passed_fields_go_nowhere() -> None:
    body = {"messages": HI, "n": 1, "logprobs": False, "frequency_penalty": 0, "presence_penalty": 0.0,
            "modalities": ["text"], "response_format": {"type": "text"}, "store": False, "seed": 1,
            "prediction": {"type": "content", "content": "x"}, "prompt_cache_key": "k",
            "metadata": {"a": "b"}, "user_security_context": {"end_user_id": "u"}, "logit_bias": {}}
    assert TRANSLATOR.request(body, target()) == {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 1024}


def test_whole_answers_golden() -> None:
    answer = TRANSLATOR.response(recorded("anthropic-messages.json"), target())
    golden_json("chat-from-anthropic-messages.json", answer)
    ChatCompletion.model_validate(answer)  # the openai SDK reads it
    message = answer["choices"][0]["message"]
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert message["tool_calls"] == [{"id": "toolu_011LF2VkWpAfJnTKJcmh1PNf", "type": "function",
                                      "function": {"name": "test_tool", "arguments": '{"value":"test"}'}}]
    assert answer["usage"]["prompt_tokens"] == 415 and answer["usage"]["completion_tokens"] == 76

    cached = TRANSLATOR.response(recorded("anthropic-messages-cache-usage.json"), target())
    golden_json("chat-from-anthropic-cache-usage.json", cached)
    # input 3 + cache read 1111 + cache write 418: the whole prompt once, the read part shown.
    assert cached["usage"] == {"prompt_tokens": 1532, "completion_tokens": 33, "total_tokens": 1565,
                               "prompt_tokens_details": {"cached_tokens": 1111}}
    assert cached["choices"][0]["finish_reason"] == "stop"


def test_a_thinking_answer_carries_the_blocks_verbatim() -> None:
    answer = TRANSLATOR.response({"id": "msg_1", "model": "claude", "stop_reason": "end_turn",
                                  "content": [THINKING, REDACTED, {"type": "text", "text": "Sunny."}],
                                  "usage": {"input_tokens": 5, "output_tokens": 9}}, target())
    message = answer["choices"][0]["message"]
    assert message["content"] == "Sunny." and message["reasoning_content"] == "Paris first."
    assert message["thinking_blocks"] == [THINKING, REDACTED]


@pytest.mark.parametrize(("reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("model_context_window_exceeded", "length"), ("pause_turn", "stop")])
def test_stop_reasons(reason: str, finish: str) -> None:
    answer = TRANSLATOR.response({"content": [], "stop_reason": reason}, target())
    assert answer["choices"][0]["finish_reason"] == finish


def _accumulated(out: list[tuple[bytes | None, bytes]]) -> Any:
    """The translated chunks read by the openai SDK's own stream accumulator."""
    state = ChatCompletionStreamState()
    for _, data in out:
        chunk = orjson.loads(data)
        if "error" not in chunk:
            state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.get_final_completion()


@pytest.mark.parametrize("name", ["anthropic-messages-stream-tool-use.sse",
                                  "anthropic-messages-stream-thinking.sse", "anthropic-messages-stream.sse"])
def test_streams_golden_and_in_order(name: str) -> None:
    out = translate(TRANSLATOR.stream({"stream_options": {"include_usage": True}}, target()), events(name))
    golden("chat-from-" + name, sse(out))
    chunks = [orjson.loads(data) for _, data in out]
    assert all(n is None for n, _ in out)  # chat streams are data-only
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] and chunks[-1]["choices"] == []  # finish, then usage
    assert not any(c["choices"] and c["choices"][0]["finish_reason"] for c in chunks[:-2])
    final = _accumulated(out)
    source = [orjson.loads(d) for _, d in events(name)]
    usage = {**source[0]["message"]["usage"], **source[-2]["usage"]}
    assert final.usage.completion_tokens == usage["output_tokens"]
    assert final.usage.prompt_tokens == usage["input_tokens"] + usage["cache_read_input_tokens"] \
        + usage["cache_creation_input_tokens"]
    if name.endswith("tool-use.sse"):
        call = final.choices[0].message.tool_calls[0]
        assert (call.id, call.function.name) == ("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather")
        assert json.loads(call.function.arguments) == {"location": "Paris"}
        assert final.choices[0].finish_reason == "tool_calls"
        assert final.choices[0].message.content == "I'll check the current weather in Paris for you."
    if name.endswith("thinking.sse"):
        extra = final.choices[0].message.model_extra
        thinking = "".join(e["delta"]["thinking"] for e in source if e.get("delta", {}).get("type") ==
                           "thinking_delta")
        assert extra["reasoning_content"] == thinking
        signature = next(e["delta"]["signature"] for e in source if e.get("delta", {}).get("type") ==
                         "signature_delta")
        assert extra["thinking_blocks"] == [{"index": 0, "type": "thinking", "thinking": thinking,
                                             "signature": signature}]


def test_a_stream_without_usage_asked_and_an_error_event() -> None:
    out = translate(TRANSLATOR.stream({}, target()), events("anthropic-messages-stream.sse"))
    assert orjson.loads(out[-1][1])["choices"][0]["finish_reason"] == "stop"  # no usage chunk
    error = translate(TRANSLATOR.stream({}, target()), events("anthropic-messages-stream-error.sse"))
    assert [orjson.loads(d) for _, d in error] == [{"error": {
        "message": "Overloaded", "type": "overloaded_error", "code": "overloaded_error", "param": None}}]
    # A stream cut before its end says so, in chat's error shape.
    cut = translate(TRANSLATOR.stream({}, target()), events("anthropic-messages-stream.sse")[:5])
    assert orjson.loads(cut[-1][1])["error"]["code"] == "upstream_error"


def test_a_tool_call_without_arguments_gets_an_empty_object() -> None:
    stream = TRANSLATOR.stream({}, target())
    usage = {"input_tokens": 1, "output_tokens": 1}
    feed = [{"type": "message_start", "message": {"id": "m", "usage": usage}},
            {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": "toolu_x", "name": "now", "input": {}}},
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "input_json_delta", "partial_json": ""}},
            {"type": "content_block_stop", "index": 0}]
    out = [o for e in feed for o in stream.feed(e["type"].encode(), orjson.dumps(e))]
    assert orjson.loads(out[-1][1])["choices"][0]["delta"] == {
        "tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}


def test_the_pair_is_listed_and_planned() -> None:
    assert translator(Operation.CHAT, Operation.MESSAGES) is TRANSLATOR
    served = {Operation.MESSAGES, Operation.COUNT_TOKENS}
    assert plan(Operation.CHAT, served) == (Operation.MESSAGES, TRANSLATOR)


# --- the property: there and back keeps every mappable field --------------------------------
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
NAMES = st.sampled_from(["get_weather", "lookup", "search_docs"])
IDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=4, max_size=8).map(lambda s: "toolu_" + s)
JSON = st.dictionaries(st.text("abcxyz", min_size=1, max_size=4),
                       st.one_of(st.integers(-5, 5), TEXT, st.booleans()), max_size=3)
IMAGE = st.one_of(st.just(f"data:image/png;base64,{PNG}"), st.just("https://example.com/a.png"))


@st.composite
def user_turn(draw: Any) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"role": "user", "content": draw(TEXT)}
    parts = [{"type": "text", "text": draw(TEXT)}, {"type": "image_url", "image_url": {"url": draw(IMAGE)}}]
    return {"role": "user", "content": draw(st.permutations(parts))}


@st.composite
def conversations(draw: Any) -> list[dict[str, Any]]:
    """Chat conversations in the shape both APIs share: one leading system message,
    turns alternating from the user, each tool call answered right after its call."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    for _ in range(draw(st.integers(0, 2))):
        messages.append(draw(user_turn()))
        ids = draw(st.lists(IDS, max_size=2, unique=True))
        text = draw(st.one_of(st.none(), TEXT)) if ids else draw(TEXT)
        assistant: dict[str, Any] = {"role": "assistant", "content": text}
        if ids:
            assistant["tool_calls"] = [{"id": i, "type": "function", "function": {
                "name": draw(NAMES), "arguments": json.dumps(draw(JSON))}} for i in ids]
        messages.append(assistant)
        messages += [{"role": "tool", "tool_call_id": i, "content": draw(TEXT)} for i in ids]
    if not messages or messages[-1]["role"] != "tool":
        messages.append(draw(user_turn()))
    return messages


@st.composite
def chat_requests(draw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": draw(conversations()), "max_tokens": draw(st.integers(1, 8192))}
    if draw(st.booleans()):
        body["tools"] = [{"type": "function", "function": {
            "name": n, "description": draw(TEXT),
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
            for n in draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))]
        body["tool_choice"] = draw(st.sampled_from(["auto", "none", "required", {
            "type": "function", "function": {"name": body["tools"][0]["function"]["name"]}}]))
        if draw(st.booleans()) and body["tool_choice"] != "none":
            body["parallel_tool_calls"] = False
    for name, values in (("temperature", st.floats(0, 1)), ("top_p", st.floats(0, 1)),
                         ("stop", st.lists(TEXT, min_size=1, max_size=3)), ("user", TEXT)):
        if draw(st.booleans()):
            body[name] = draw(values)
    return body


def _arguments(message: dict[str, Any]) -> dict[str, Any]:
    for call in message.get("tool_calls") or []:
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chat_requests())
def test_a_chat_request_there_and_back_keeps_every_mappable_field(body: dict[str, Any]) -> None:
    there = TRANSLATOR.request(json.loads(json.dumps(body)), target())
    back = BACK.request(there, target())
    assert [_arguments(m) for m in back.pop("messages")] == [_arguments(m) for m in body.pop("messages")]
    assert back == body


ANSWER_BLOCKS = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, TEXT),
    st.builds(lambda i, n, j: {"type": "tool_use", "id": i, "name": n, "input": j}, IDS, NAMES, JSON))


THOUGHTS = st.lists(st.one_of(
    st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, TEXT, TEXT),
    st.builds(lambda d: {"type": "redacted_thinking", "data": d}, TEXT)), max_size=2)


@settings(max_examples=200, deadline=None)
@given(THOUGHTS, st.lists(ANSWER_BLOCKS, max_size=4),
       st.sampled_from(["end_turn", "max_tokens", "tool_use", "refusal"]),
       st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**5))
def test_an_answer_there_and_back_keeps_every_mappable_field(
        thoughts: list[dict[str, Any]], blocks: list[dict[str, Any]], reason: str, fresh: int, cached: int,
        output: int) -> None:
    # Thinking first, then one text block at most: chat has one content string, and Claude
    # writes its text before the calls it makes.
    texts = [b for b in blocks if b["type"] == "text"][:1]
    blocks = thoughts + texts + [b for b in blocks if b["type"] == "tool_use"]
    answer = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
              "content": blocks, "stop_reason": reason, "stop_sequence": None,
              "usage": {"input_tokens": fresh, "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": cached, "output_tokens": output}}
    if reason == "refusal":
        blocks[:] = thoughts + texts  # a refusal carries no calls
    chat = TRANSLATOR.response(json.loads(json.dumps(answer)), target())
    assert BACK.response(chat, target()) == answer


@given(st.text(min_size=1, max_size=40), st.text(max_size=20), st.text(max_size=20))
def test_a_text_delta_takes_the_short_way_to_the_same_bytes(text: str, ident: str, model: str) -> None:
    """A text delta's chunk is made from bytes kept for the stream (the fast path): it
    must be the chunk the general path dumps, whatever the text, id and model hold."""
    stream = TRANSLATOR.stream({}, target())
    start = {"type": "message_start", "message": {"id": ident, "model": model, "usage": {}}}
    stream.feed(b"message_start", orjson.dumps(start))
    delta = {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": text}}
    (name, data), = stream.feed(b"content_block_delta", orjson.dumps(delta))
    assert name is None
    assert data == orjson.dumps({
        "id": ident, "object": "chat.completion.chunk", "created": target().created,
        "model": model or "claude-sonnet-4-5",
        "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}]})


def test_the_kept_bytes_follow_the_message_they_belong_to() -> None:
    """Bytes kept before message_start (a backend that sends a delta first) are made again
    once it names the message: later chunks carry its id and model."""
    stream = TRANSLATOR.stream({}, target())
    delta = orjson.dumps({"type": "content_block_delta", "index": 0,
                          "delta": {"type": "text_delta", "text": "a"}})
    (_, early), = stream.feed(b"content_block_delta", delta)
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {}}}
    stream.feed(b"message_start", orjson.dumps(start))
    (_, late), = stream.feed(b"content_block_delta", delta)
    assert orjson.loads(early)["id"] == ""
    assert (orjson.loads(late)["id"], orjson.loads(late)["model"]) == ("msg_1", "claude-x")
