"""Anthropic's Messages API and count_tokens (gateway.apis.anthropic) against the recorded
samples: a real request with tools and a tool result, answers with tool use and cache
usage, text, tool-use and thinking streams, the documented in-stream error and the
count_tokens requests and answers (tests/fixtures/contract/README.md)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.apis.anthropic import COUNT_TOKENS, MESSAGES
from gateway.core.errors import InvalidRequest
from gateway.core.sse import Event
from policies import Usage
from tests.samples import decode, golden, objects, raw, recorded, sample, slot_paths, unescape

TEXT_STREAM = "anthropic-messages-stream.sse"
TOOL_STREAM = "anthropic-messages-stream-tool-use.sse"
THINKING_STREAM = "anthropic-messages-stream-thinking.sse"
ERROR_STREAM = "anthropic-messages-stream-error.sse"
STREAMS = (TEXT_STREAM, TOOL_STREAM, THINKING_STREAM)


def request() -> dict[str, Any]:
    return sample("anthropic-messages-request.json")  # type: ignore[no-any-return]


def counting() -> dict[str, Any]:
    return {k: v for k, v in sample("anthropic-count-tokens.json").items()
            if isinstance(v, dict) and "request" in v}


def by_path(paths: list[tuple[str | None, str]]) -> list[tuple[str, str]]:
    return sorted((p or "(read-only)", v) for p, v in paths)


# --- request ------------------------------------------------------------------------
def test_recorded_requests_pass() -> None:
    MESSAGES.validate(request())
    for case in counting().values():
        COUNT_TOKENS.validate(case["request"])


def test_messages_needs_max_tokens_count_tokens_does_not() -> None:
    docs = counting()["docs_example"]["request"]
    with pytest.raises(InvalidRequest) as caught:
        MESSAGES.validate(docs)
    assert caught.value.param == "max_tokens"
    COUNT_TOKENS.validate(docs)


@pytest.mark.parametrize(("param", "body"), [
    ("model", {"model": 4}),
    ("messages", {"messages": "hi"}),
    ("messages.0", {"messages": ["hi"]}),
    ("system", {"system": 7}),
    ("system", {"system": {"type": "text", "text": "x"}}),
    ("max_tokens", {"max_tokens": "4096"}),
    ("max_tokens", {"max_tokens": True}),
    ("stream", {"stream": "false"}),
    ("tools", {"tools": {"name": "x"}}),
    ("tools.1", {"tools": [{"name": "x"}, "y"]}),
])
@pytest.mark.parametrize("api", [MESSAGES, COUNT_TOKENS], ids=["messages", "count_tokens"])
def test_each_wrong_type_names_its_param(api: Any, param: str, body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        api.validate({**request(), **body})
    assert caught.value.param == param


def test_is_stream() -> None:
    assert not MESSAGES.is_stream(request())  # recorded with stream: false
    assert MESSAGES.is_stream({**request(), "stream": True})
    assert not COUNT_TOKENS.is_stream({**request(), "stream": True})  # counting never streams
    body = request()
    assert MESSAGES.ask_stream_usage(body) is False and body == request()


# --- prompt -------------------------------------------------------------------------
def test_prompt_texts_of_the_recorded_request() -> None:
    body = request()
    expected = [
        ("system", "Always call `country_source` first, then call `capital_lookup` with that result "
                   "before replying."),
        ("messages.0.content.0.text", "Use the registered tools and respond exactly as `Capital: <city>`."),
        ("messages.1.content.0.text", "I'll help you find the capital city using the available tools."),
        # messages.1.content.1 is a tool_use whose input is {}: no text
        ("messages.2.content.0.content", "Japan"),  # the tool's result
        ("tools.0.name", "country_source"), ("tools.0.description", ""), (None, "object"),
        ("tools.1.name", "capital_lookup"), ("tools.1.description", ""),
        (None, "country"), (None, "country"), (None, "string"), (None, "object"),
    ]
    assert by_path(slot_paths(body, MESSAGES.prompt_texts(body))) == by_path(expected)
    assert by_path(slot_paths(body, COUNT_TOKENS.prompt_texts(body))) == by_path(expected)


def test_prompt_texts_of_the_recorded_count_tokens_requests() -> None:
    cases = counting()
    docs = cases["docs_example"]["request"]
    assert slot_paths(docs, COUNT_TOKENS.prompt_texts(docs)) == [
        ("system", "You are a scientist"), ("messages.0.content", "Hello, Claude")]
    tools = cases["recorded_with_tools"]["request"]
    assert by_path(slot_paths(tools, COUNT_TOKENS.prompt_texts(tools))) == by_path([
        ("messages.0.content.0.text", "What is the USD to EUR rate?"),
        ("messages.1.content.0.input.queries.0", "exchange rate"),  # a tool_use's input, replayed
        # messages.2 is a tool_result holding a tool_reference: a name, no text
        ("tools.0.name", "get_exchange_rate"), ("tools.0.description", ""), (None, "object"),
    ])


def test_system_blocks_and_tool_result_parts_are_text() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
    body = {"max_tokens": 10,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
                    {"type": "text", "text": "18°C"}, image]}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Hmm.", "signature": "EvMC"}]}]}
    assert slot_paths(body, MESSAGES.prompt_texts(body)) == [
        ("system.0.text", "Be brief."), ("messages.0.content.0.content.0.text", "18°C")]
    # a thinking block comes back signed: rewriting it would break the signature


def test_prompt_parts_framing_and_limits() -> None:
    body = request()
    assert MESSAGES.prompt_parts(body) == [body["system"], body["messages"], body["tools"]]
    assert MESSAGES.prompt_framing(body) - MESSAGES.prompt_framing({"messages": []}) == 4 * 3
    assert MESSAGES.max_output_tokens(body) == 4096
    assert MESSAGES.outputs(body) == 1
    assert MESSAGES.generates and not COUNT_TOKENS.generates
    assert COUNT_TOKENS.prompt_parts(body) == []  # counting consumes no model tokens
    assert COUNT_TOKENS.prompt_framing(body) == 0


def test_nothing_is_stored() -> None:
    answer = sample("anthropic-messages.json")
    assert not MESSAGES.stores(request()) and MESSAGES.stored_id(answer) is None
    assert MESSAGES.previous_response(request()) is None and not MESSAGES.pending(answer)


# --- whole answers ------------------------------------------------------------------
def test_usage_of_recorded_answers() -> None:
    assert MESSAGES.usage(sample("anthropic-messages.json")) == Usage(415, 76)
    # the prompt is input + cache writes + cache reads; the reads are the cached part
    assert MESSAGES.usage(sample("anthropic-messages-cache-usage.json")) == Usage(
        3 + 418 + 1111, 33, cached_tokens=1111)


@pytest.mark.parametrize(("field", "value"), [
    ("input_tokens", True), ("input_tokens", -3), ("cache_read_input_tokens", "1111"),
    ("cache_creation_input_tokens", 1.5), ("output_tokens", False), ("output_tokens", -33),
])
def test_usage_refuses_counts_that_are_not_counts(field: str, value: Any) -> None:
    answer = sample("anthropic-messages-cache-usage.json")
    answer["usage"][field] = value
    assert MESSAGES.usage(answer) is None


def test_count_tokens_reports_no_usage() -> None:
    for case in counting().values():
        assert case["response"]["input_tokens"] > 0
        assert COUNT_TOKENS.usage(case["response"]) is None  # counting is free
        assert COUNT_TOKENS.completion_texts(case["response"]) == []
        assert not COUNT_TOKENS.answer_error(case["response"])


def test_answer_error() -> None:
    errors = sample("anthropic-error.json")
    for case in ("docs_example_404", "invalid_request_400", "authentication_401", "not_found_404",
                 "rate_limit_429", "overloaded_529"):
        assert MESSAGES.answer_error(errors[case]["body"]), case
        assert COUNT_TOKENS.answer_error(errors[case]["body"]), case
    assert not MESSAGES.answer_error(sample("anthropic-messages.json"))


def test_completion_texts_are_each_blocks_texts() -> None:
    answer = sample("anthropic-messages.json")
    texts = MESSAGES.completion_texts(answer)
    assert [(t.key, t.value) for t in texts] == [
        (0, "I'll use the test_tool with the value \"test\" as requested, then provide a final response."),
        (1, "test")]  # the tool_use's input strings
    texts[1].set("changed")
    assert answer["content"][1]["input"] == {"value": "changed"}


def test_block_completion_empties_the_block_and_refuses() -> None:
    answer = sample("anthropic-messages.json")
    MESSAGES.block_completion(answer, 1, {"violence": {"filtered": True, "severity": "high"}})
    assert answer["content"] == [sample("anthropic-messages.json")["content"][0],
                                 {"type": "text", "text": ""}]
    assert answer["stop_reason"] == "refusal"


def test_annotate_has_no_place_in_this_shape() -> None:
    answer = sample("anthropic-messages.json")
    MESSAGES.annotate(answer, {"hate": {"filtered": False, "severity": "safe"}}, {0: {}})
    assert answer == sample("anthropic-messages.json")


# --- streams ------------------------------------------------------------------------
def stream_usage(events: list[Event]) -> Usage | None:
    usage = None
    for _, data in events:
        if MESSAGES.may_carry_usage(data):
            usage = MESSAGES.stream_usage(orjson.loads(data), usage)
    return usage


def test_stream_usage_spreads_over_message_start_and_the_last_message_delta() -> None:
    assert stream_usage(recorded(TEXT_STREAM)) == Usage(770, 38)
    # 2025's message_delta carried output_tokens only: the prompt is message_start's
    assert stream_usage(recorded(TOOL_STREAM)) == Usage(377, 65)
    assert stream_usage(recorded(THINKING_STREAM)) == Usage(43, 282)
    for name in STREAMS:
        carriers = [orjson.loads(d)["type"] for _, d in recorded(name) if MESSAGES.may_carry_usage(d)]
        assert carriers == ["message_start", "message_delta"]


def test_stream_usage_with_cache_and_what_is_no_count() -> None:
    start, *_ = (e for _, e in objects(recorded(TEXT_STREAM)) if e["type"] == "message_start")
    start["message"]["usage"] = sample("anthropic-messages-cache-usage.json")["usage"]
    usage = MESSAGES.stream_usage(start, None)
    assert usage == Usage(1532, 33, cached_tokens=1111)
    for bogus in (True, -1, "38", 38.0):
        delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                 "usage": {"output_tokens": bogus}}
        assert MESSAGES.stream_usage(delta, usage) is usage  # refused: the count so far stays
    delta = {"type": "message_delta", "usage": {"output_tokens": 90}}
    assert MESSAGES.stream_usage(delta, usage) == Usage(1532, 90, cached_tokens=1111)  # replaces, cumulative


def generated_by_the_stream(name: str) -> str:
    """The stream's generated text read from its parsed events: text, tool input JSON and
    thinking, in order."""
    out = ""
    for _, event in objects(recorded(name)):
        delta = event.get("delta", {})
        if event["type"] == "content_block_delta":
            out += delta.get("text", "") + delta.get("partial_json", "") + delta.get("thinking", "")
    return out


@pytest.mark.parametrize("name", STREAMS)
def test_output_text_is_the_generated_text(name: str) -> None:
    pieces = [p for _, data in recorded(name) for p in MESSAGES.output_text(data)]
    assert unescape(pieces) == generated_by_the_stream(name)


def test_the_generated_texts_of_the_recorded_streams() -> None:
    assert generated_by_the_stream(TEXT_STREAM) == (
        "The weather in San Francisco, CA is currently:\n- **Temperature:** 68°F\n- **Condition:** Sunny"
        "\n\nIt's a nice sunny day!")
    assert generated_by_the_stream(TOOL_STREAM).endswith('you.{"location": "Paris"}')


def deltas(name: str) -> dict[Any, str]:
    out: dict[Any, str] = {}
    for _, event in objects(recorded(name)):
        text = MESSAGES.stream_delta(event)
        if text is not None:
            out[text.key] = out.get(text.key, "") + text.value
    return out


def test_stream_delta_keys_each_block() -> None:
    assert deltas(TEXT_STREAM) == {0: generated_by_the_stream(TEXT_STREAM)}
    tool = deltas(TOOL_STREAM)
    assert tool == {0: "I'll check the current weather in Paris for you.",
                    (1, "json"): '{"location": "Paris"}'}
    # thinking is signed: it is not offered for rewriting; the text block after it is
    assert set(deltas(THINKING_STREAM)) == {1}


def test_keepalive_is_ping_and_nothing_repeats_text() -> None:
    for name in STREAMS:
        events = objects(recorded(name))
        assert [e["type"] for _, e in events if MESSAGES.is_keepalive(e)] == ["ping"]
        assert all(MESSAGES.stream_final(e) == [] for _, e in events)
        assert not any(MESSAGES.is_end(d) for _, d in recorded(name))
        assert not any(MESSAGES.drop_event(e, strip_usage=True) for _, e in events)


@pytest.mark.parametrize("name", [*STREAMS, ERROR_STREAM])
def test_encode_reframes_a_recorded_stream_byte_for_byte(name: str) -> None:
    """Names and padded JSON as recorded: `event: <type>` + `data: <json>`."""
    events = recorded(name)
    assert all(n == orjson.loads(d)["type"].encode() for n, d in events)
    assert b"".join(MESSAGES.encode(n, d) for n, d in events) + MESSAGES.end() == raw(name)


def test_encode_names_an_unnamed_event_by_its_type() -> None:
    assert MESSAGES.encode(None, b'{"type":"message_stop"}') == \
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def closing(made: bytes) -> list[tuple[bytes | None, dict[str, Any]]]:
    return [(n, orjson.loads(d)) for n, d in decode(made)]


def test_blocked_end_closes_the_open_block_and_refuses() -> None:
    """Cut the recorded stream in its first text block: the open block is closed, then the
    message ends with stop_reason refusal and message_stop, the events the recorded
    stream itself ends with."""
    events = recorded(TEXT_STREAM)
    first, last = events[0][1], events[4][1]  # message_start, and the second text delta
    made = MESSAGES.blocked_end(first, last, {"violence": {"filtered": True, "severity": "high"}})
    golden("apis/messages.blocked_end.sse", made)
    ours = closing(made)
    theirs = objects(events)[-3:]
    assert [n for n, _ in ours] == [n for n, _ in theirs] == [b"content_block_stop", b"message_delta",
                                                              b"message_stop"]
    assert all(n == e["type"].encode() for n, e in ours)
    for (_, mine), (_, recorded_event) in zip(ours, theirs, strict=True):
        assert set(mine) == set(recorded_event)
    stop, delta, _ = (e for _, e in ours)
    assert stop == {"type": "content_block_stop", "index": 0}
    assert set(delta["delta"]) == set(theirs[1][1]["delta"]) and delta["delta"]["stop_reason"] == "refusal"
    assert set(delta["usage"]) <= set(theirs[1][1]["usage"])


def test_blocked_end_closes_only_what_is_open() -> None:
    events = recorded(TOOL_STREAM)
    first = events[0][1]
    in_tool_input = closing(MESSAGES.blocked_end(first, events[9][1], {}))
    assert in_tool_input[0][1] == {"type": "content_block_stop", "index": 1}
    after_a_block = closing(MESSAGES.blocked_end(first, events[5][1], {}))  # content_block_stop 0
    assert [n for n, _ in after_a_block] == [b"message_delta", b"message_stop"]
    before_any = closing(MESSAGES.blocked_end(first, first, {}))
    assert [n for n, _ in before_any] == [b"message_delta", b"message_stop"]


def test_stream_error_is_the_documented_error_event() -> None:
    [(their_name, their_data)] = recorded(ERROR_STREAM)
    made = MESSAGES.stream_error("upstream_error", "The upstream stream failed: ClientPayloadError.", b"")
    golden("apis/messages.stream_error.sse", made)
    [(name, data)] = decode(made)
    ours, theirs = orjson.loads(data), orjson.loads(their_data)
    assert name == their_name == b"error"
    assert set(ours) == set(theirs) and set(ours["error"]) == set(theirs["error"])
    assert ours["error"] == {"type": "api_error",
                             "message": "The upstream stream failed: ClientPayloadError."}
    timeout = orjson.loads(decode(MESSAGES.stream_error("upstream_timeout", "stalled", b""))[0][1])
    assert timeout["error"]["type"] == "timeout_error"
    recorded_doc = sample("anthropic-error.json")["in_stream_error_event"]["sse"].encode()
    assert decode(recorded_doc) == [(their_name, their_data)]
