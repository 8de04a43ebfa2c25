"""Chat Completions (gateway.apis.chat) against the recorded samples: Azure OpenAI and
Azure AI inference answers, an Azure stream with usage, a filtered Azure stream, and
OpenAI's tool-call streams (tests/fixtures/contract/README.md).

No chat request body was recorded; the requests here are the one openai-python sent for
the recorded tool-call stream (`client.chat.completions.stream(model=..., messages=[...],
tools=[openai.pydantic_function_tool(GetWeatherArgs)])`, written out as the SDK builds it)
and its follow-up turn, built from the recorded tool call."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from gateway.apis.chat import CHAT
from gateway.core.errors import InvalidRequest
from policies import Usage
from tests.samples import decode, golden, objects, raw, recorded, sample, slot_paths, unescape

AZURE_STREAM = "azure-openai-chat-stream.sse"
FILTERED_STREAM = "azure-openai-stream-filtered.sse"
TOOL_STREAM = "chat-completions-stream-tool-calls.sse"
PARALLEL_STREAM = "chat-completions-stream-parallel-tool-calls.sse"
STREAMS = (AZURE_STREAM, FILTERED_STREAM, TOOL_STREAM, PARALLEL_STREAM)

# openai.pydantic_function_tool(GetWeatherArgs), GetWeatherArgs(city: str, country: str,
# units: Literal["c", "f"] = "c"), as openai 3.57 builds it.
WEATHER_TOOL: dict[str, Any] = {"type": "function", "function": {
    "name": "GetWeatherArgs", "strict": True, "parameters": {
        "properties": {"city": {"title": "City", "type": "string"},
                       "country": {"title": "Country", "type": "string"},
                       "units": {"default": "c", "enum": ["c", "f"], "title": "Units", "type": "string"}},
        "required": ["city", "country", "units"], "title": "GetWeatherArgs", "type": "object",
        "additionalProperties": False}}}
# The request of the recorded tool-call stream.
ASKED: dict[str, Any] = {"model": "gpt-4o-2024-08-06", "stream": True,
                         "messages": [{"role": "user", "content": "What's the weather like in Edinburgh?"}],
                         "tools": [WEATHER_TOOL]}
RECORDED_ARGUMENTS = '{"city":"Edinburgh","country":"UK","units":"c"}'


def follow_up() -> dict[str, Any]:
    """The next turn: every place a chat request carries text, and places that hold none."""
    return {
        "model": "gpt-4o-2024-08-06",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Answer in one sentence."}]},
            {"role": "user", "name": "jane", "content": "What's the weather like in Edinburgh?"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_c91SqDXlYFuETYv8mUHzz6pp", "type": "function",
                "function": {"name": "GetWeatherArgs", "arguments": RECORDED_ARGUMENTS}}]},
            {"role": "tool", "tool_call_id": "call_c91SqDXlYFuETYv8mUHzz6pp", "content": "12°C, light rain"},
            {"role": "assistant", "content": None, "refusal": "I can't see pictures."},
            {"role": "user", "content": [
                {"type": "text", "text": "And in this picture?"},
                {"type": "image_url",
                 "image_url": {"url": "https://example.com/sky.png", "detail": "auto"}}]},
        ],
        "tools": [copy.deepcopy(WEATHER_TOOL)],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "weather", "description": "A short report", "strict": True,
            "schema": {"type": "object", "properties": {"summary": {"type": "string",
                                                                    "description": "One sentence"}},
                       "required": ["summary"], "additionalProperties": False}}},
        "stream": True, "stream_options": {"include_usage": True},
        "max_completion_tokens": 200, "n": 2, "temperature": 0.2, "top_p": 1,
    }


def by_path(paths: list[tuple[str | None, str]]) -> list[tuple[str, str]]:
    return sorted((p or "(read-only)", v) for p, v in paths)


# --- request ------------------------------------------------------------------------
def test_good_bodies_pass() -> None:
    CHAT.validate(ASKED)
    CHAT.validate(follow_up())
    CHAT.validate({"messages": [], "max_tokens": 5, "temperature": 1, "user": "u", "model": "m"})


@pytest.mark.parametrize(("param", "body"), [
    ("model", {"model": 4}),
    ("user", {"user": ["u"]}),
    ("messages", {"messages": "hello"}),
    ("messages.0", {"messages": ["hello"]}),
    ("stream", {"stream": "true"}),
    ("stream", {"stream": 1}),
    ("stream_options", {"stream_options": True}),
    ("stream_options.include_usage", {"stream_options": {"include_usage": "yes"}}),
    ("max_tokens", {"max_tokens": 10.5}),
    ("max_tokens", {"max_tokens": True}),
    ("max_completion_tokens", {"max_completion_tokens": "200"}),
    ("n", {"n": "2"}),
    ("temperature", {"temperature": "0.7"}),
    ("temperature", {"temperature": True}),
    ("top_p", {"top_p": "1"}),
])
def test_each_wrong_type_names_its_param(param: str, body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        CHAT.validate({**follow_up(), **body})
    assert caught.value.param == param
    assert f"'{param}'" in caught.value.message


def test_a_missing_messages_list_is_named() -> None:
    with pytest.raises(InvalidRequest) as caught:
        CHAT.validate({"model": "m"})
    assert caught.value.param == "messages"


def test_is_stream_only_for_true() -> None:
    assert CHAT.is_stream(ASKED)
    assert not CHAT.is_stream({**ASKED, "stream": False})
    assert not CHAT.is_stream({"messages": []})


def test_ask_stream_usage_adds_include_usage_and_says_the_client_did_not() -> None:
    body = copy.deepcopy(ASKED)
    assert CHAT.ask_stream_usage(body) is True
    assert body["stream_options"] == {"include_usage": True}
    kept = {**ASKED, "stream_options": {"include_obfuscation": False}}
    assert CHAT.ask_stream_usage(kept) is True
    assert kept["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    asked = follow_up()
    assert CHAT.ask_stream_usage(asked) is False
    assert asked["stream_options"] == {"include_usage": True}


# --- prompt -------------------------------------------------------------------------
def test_prompt_texts_are_every_text_the_client_supplies_and_nothing_else() -> None:
    body = follow_up()
    assert by_path(slot_paths(body, CHAT.prompt_texts(body))) == by_path([
        ("messages.0.content.0.text", "Answer in one sentence."),
        ("messages.1.content", "What's the weather like in Edinburgh?"),
        ("messages.1.name", "jane"),
        ("messages.2.tool_calls.0.function.arguments", RECORDED_ARGUMENTS),
        ("messages.3.content", "12°C, light rain"),  # the tool's result
        ("messages.4.refusal", "I can't see pictures."),
        ("messages.5.content.0.text", "And in this picture?"),
        # the tool: its name and its schema's texts; its property names, types and
        # required names are names, readable but not to be rewritten
        ("tools.0.function.name", "GetWeatherArgs"),
        ("tools.0.function.parameters.title", "GetWeatherArgs"),
        ("tools.0.function.parameters.properties.city.title", "City"),
        ("tools.0.function.parameters.properties.country.title", "Country"),
        ("tools.0.function.parameters.properties.units.title", "Units"),
        ("tools.0.function.parameters.properties.units.default", "c"),
        ("tools.0.function.parameters.properties.units.enum.0", "c"),
        ("tools.0.function.parameters.properties.units.enum.1", "f"),
        *[(None, name) for name in ("city", "country", "units") * 2],
        *[(None, "string")] * 3, (None, "object"),
        # the structured-output format
        ("response_format.json_schema.name", "weather"),
        ("response_format.json_schema.description", "A short report"),
        ("response_format.json_schema.schema.properties.summary.description", "One sentence"),
        (None, "summary"), (None, "summary"), (None, "string"), (None, "object"),
    ])


def test_prompt_slots_are_the_body_itself() -> None:
    """A filter rewrites a text through its slot: the body sent upstream changes."""
    body = follow_up()
    for container, key in CHAT.prompt_texts(body):
        container[key] = "<" + container[key] + ">"
    assert body["messages"][3]["content"] == "<12°C, light rain>"
    assert body["messages"][2]["tool_calls"][0]["function"]["arguments"] == f"<{RECORDED_ARGUMENTS}>"
    schema = body["tools"][0]["function"]["parameters"]
    # names stay as they were: the schema still describes the same arguments
    assert schema["required"] == ["city", "country", "units"] and schema["type"] == "object"
    assert set(schema["properties"]) == {"city", "country", "units"}
    assert body["messages"][5]["content"][1] == follow_up()["messages"][5]["content"][1]


def test_prompt_parts_framing_and_limits() -> None:
    body = follow_up()
    assert CHAT.prompt_parts(body) == [body["messages"], body["tools"], None]
    # Per message and for the reply's priming, as OpenAI counts (3-4 per message).
    assert CHAT.prompt_framing(body) - CHAT.prompt_framing({"messages": body["messages"][:1]}) == 4 * 5
    assert CHAT.max_output_tokens(body) == 200
    assert CHAT.max_output_tokens({"messages": [], "max_tokens": 50}) == 50
    assert CHAT.max_output_tokens(ASKED) is None
    assert CHAT.outputs(body) == 2
    assert CHAT.outputs(ASKED) == 1
    assert CHAT.outputs({"n": 0}) == 1


def test_nothing_is_stored() -> None:
    assert CHAT.stores({**ASKED, "store": True}) is False
    assert CHAT.stored_id(sample("azure-openai-chat.json")) is None
    assert CHAT.previous_response(ASKED) is None
    assert CHAT.pending(sample("azure-openai-chat.json")) is False


# --- whole answers ------------------------------------------------------------------
def test_usage_of_recorded_answers() -> None:
    assert CHAT.usage(sample("azure-openai-chat.json")) == Usage(13, 30)
    assert CHAT.usage(sample("azure-inference-chat.json")) == Usage(24, 139)


def test_usage_cached_and_reasoning_tokens() -> None:
    answer = sample("azure-openai-chat.json")
    answer["usage"]["prompt_tokens_details"]["cached_tokens"] = 8
    answer["usage"]["completion_tokens_details"]["reasoning_tokens"] = 12
    assert CHAT.usage(answer) == Usage(13, 30, cached_tokens=8, reasoning_tokens=12)


@pytest.mark.parametrize(("field", "value"), [
    ("prompt_tokens", True), ("prompt_tokens", -1), ("prompt_tokens", "13"), ("prompt_tokens", 1.5),
    ("completion_tokens", False), ("completion_tokens", -30), ("completion_tokens", None),
])
def test_usage_refuses_counts_that_are_not_counts(field: str, value: Any) -> None:
    answer = sample("azure-openai-chat.json")
    answer["usage"][field] = value
    assert CHAT.usage(answer) is None


def test_usage_details_that_are_not_counts_count_nothing() -> None:
    answer = sample("azure-openai-chat.json")
    answer["usage"]["prompt_tokens_details"]["cached_tokens"] = True
    answer["usage"]["completion_tokens_details"]["reasoning_tokens"] = -4
    assert CHAT.usage(answer) == Usage(13, 30)
    assert CHAT.usage({"choices": []}) is None


def test_answer_error_only_for_an_error_without_choices() -> None:
    assert CHAT.answer_error(sample("azure-openai-429.json"))
    assert CHAT.answer_error(sample("azure-openai-content-filter-400.json"))
    assert not CHAT.answer_error(sample("azure-openai-chat.json"))
    assert not CHAT.answer_error(sample("azure-inference-chat.json"))
    assert not CHAT.answer_error({**sample("azure-openai-chat.json"), "error": {"message": "x"}})


def tool_call_answer() -> dict[str, Any]:
    """The whole answer of the recorded tool-call stream, as openai-python assembles it."""
    events = objects(recorded(TOOL_STREAM))
    first = events[0][1]
    return {"id": first["id"], "object": "chat.completion", "created": first["created"],
            "model": first["model"], "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "refusal": None, "tool_calls": [{
                    "id": "call_c91SqDXlYFuETYv8mUHzz6pp", "type": "function",
                    "function": {"name": "GetWeatherArgs", "arguments": RECORDED_ARGUMENTS}}]}}],
            "usage": events[-1][1]["usage"]}


def test_completion_texts_are_the_generated_texts() -> None:
    answer = sample("azure-openai-chat.json")
    texts = CHAT.completion_texts(answer)
    assert [(t.key, t.value) for t in texts] == [(0, answer["choices"][0]["message"]["content"])]
    calls = CHAT.completion_texts(tool_call_answer())
    assert [(t.key, t.value) for t in calls] == [(0, RECORDED_ARGUMENTS)]
    texts[0].set("changed")
    assert answer["choices"][0]["message"]["content"] == "changed"


def test_block_completion_empties_the_choice_with_a_content_filter_finish() -> None:
    answer = tool_call_answer()
    CHAT.block_completion(answer, 0, {"violence": {"filtered": True, "severity": "high"}})
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == "" and "tool_calls" not in choice["message"]
    untouched = sample("azure-openai-chat.json")
    CHAT.block_completion(untouched, 1, {})  # no such choice
    CHAT.block_completion(untouched, "0", {})
    assert untouched == sample("azure-openai-chat.json")


def test_annotate_puts_results_where_azure_does() -> None:
    """Azure's own answer, its filter results taken out and put back by annotate, is the
    recorded answer again."""
    recorded_answer = sample("azure-openai-chat.json")
    answer = copy.deepcopy(recorded_answer)
    prompt = answer.pop("prompt_filter_results")[0]["content_filter_results"]
    output = answer["choices"][0].pop("content_filter_results")
    CHAT.annotate(answer, prompt, {0: output})
    assert answer == recorded_answer


# --- streams ------------------------------------------------------------------------
def stream_usage(name: str) -> Usage | None:
    usage = None
    for _, data in recorded(name):
        if CHAT.is_end(data):
            break
        if CHAT.may_carry_usage(data):
            usage = CHAT.stream_usage(orjson.loads(data), usage)
    return usage


def test_stream_usage_is_the_usage_chunk() -> None:
    assert stream_usage(AZURE_STREAM) == Usage(22, 28)
    assert stream_usage(TOOL_STREAM) == Usage(76, 24)
    assert stream_usage(FILTERED_STREAM) is None  # asked without include_usage


def test_only_the_usage_chunk_may_carry_usage() -> None:
    for name in STREAMS:
        events = [data for _, data in recorded(name) if data != b"[DONE]"]
        carriers = [orjson.loads(d) for d in events if CHAT.may_carry_usage(d)]
        assert all(c["choices"] == [] and isinstance(c["usage"], dict) for c in carriers)
        assert len(carriers) == (0 if name == FILTERED_STREAM else 1)


def test_stream_usage_with_details_and_refusing_what_is_no_count() -> None:
    chunk = objects(recorded(AZURE_STREAM))[-1][1]
    chunk["usage"].update(prompt_tokens_details={"cached_tokens": 6},
                          completion_tokens_details={"reasoning_tokens": 10})
    assert CHAT.stream_usage(chunk, None) == Usage(22, 28, cached_tokens=6, reasoning_tokens=10)
    before = Usage(1, 2)
    for bogus in (True, -3, "22"):
        chunk["usage"]["prompt_tokens"] = bogus
        assert CHAT.stream_usage(chunk, before) is before


def test_drop_event_drops_only_the_usage_chunk_the_gateway_asked_for() -> None:
    events = objects(recorded(AZURE_STREAM))
    dropped = [e for _, e in events if CHAT.drop_event(e, strip_usage=True)]
    assert dropped == [events[-1][1]]  # not the prompt-annotation chunk, which has no choices either
    assert not any(CHAT.drop_event(e, strip_usage=False) for _, e in events)


def generated(name: str) -> str:
    return unescape([p for _, data in recorded(name) for p in CHAT.output_text(data)])


def test_output_text_is_the_generated_text() -> None:
    assert generated(AZURE_STREAM) == "Ah, greetings. How can I assist you today?"
    assert generated(FILTERED_STREAM) == "Hello! I"
    assert orjson.loads(generated(TOOL_STREAM)) == orjson.loads(RECORDED_ARGUMENTS)
    # the two calls' arguments, one after the other
    parallel = generated(PARALLEL_STREAM)
    first_end = parallel.index("}") + 1
    assert orjson.loads(parallel[:first_end])["city"] == "Edinburgh"
    assert orjson.loads(parallel[first_end:]) == {"ticker": "AAPL", "exchange": "NASDAQ"}


def test_output_text_keeps_escapes_for_counting() -> None:
    data = b'{"choices":[{"index":0,"delta":{"content":"a \\"quoted\\" line\\n"}}]}'
    assert CHAT.output_text(data) == [b'a \\"quoted\\" line\\n']
    assert unescape(CHAT.output_text(data)) == 'a "quoted" line\n'


def deltas(name: str) -> dict[Any, str]:
    out: dict[Any, str] = {}
    for _, event in objects(recorded(name)):
        text = CHAT.stream_delta(event)
        if text is not None:
            out[text.key] = out.get(text.key, "") + text.value
    return out


def test_stream_delta_keys_each_output() -> None:
    assert deltas(AZURE_STREAM) == {0: "Ah, greetings. How can I assist you today?"}
    assert deltas(TOOL_STREAM) == {(0, "tool", 0): RECORDED_ARGUMENTS}
    parallel = deltas(PARALLEL_STREAM)
    assert set(parallel) == {(0, "tool", 0), (0, "tool", 1)}
    assert orjson.loads(parallel[(0, "tool", 1)]) == {"ticker": "AAPL", "exchange": "NASDAQ"}


def test_stream_delta_slot_rewrites_the_event() -> None:
    event = objects(recorded(AZURE_STREAM))[2][1]
    text = CHAT.stream_delta(event)
    assert text is not None and text.value == "Ah"
    text.set("Oh")
    assert event["choices"][0]["delta"]["content"] == "Oh"


def test_stream_final_keepalive_and_end() -> None:
    for name in STREAMS:
        events = recorded(name)
        assert [d for _, d in events if CHAT.is_end(d)] == [b"[DONE]"]
        assert events[-1][1] == b"[DONE]"
        for _, event in objects(events):
            assert CHAT.stream_final(event) == []
            assert not CHAT.is_keepalive(event)


@pytest.mark.parametrize("name", STREAMS)
def test_encode_and_end_reframe_a_recorded_stream_byte_for_byte(name: str) -> None:
    events = recorded(name)
    assert all(n is None for n, _ in events)  # data-only framing
    framed = b"".join(CHAT.encode(n, d) for n, d in events[:-1]) + CHAT.end()
    assert framed == raw(name)
    assert CHAT.encode(b"ignored", b"{}") == b"data: {}\n\n"  # chat never names its events


FILTER_RESULT = {"hate": {"filtered": False, "severity": "safe"},
                 "self_harm": {"filtered": False, "severity": "safe"},
                 "sexual": {"filtered": False, "severity": "safe"},
                 "violence": {"filtered": True, "severity": "medium"}}


def test_blocked_end_is_azures_own_filtered_ending() -> None:
    """Cut the recorded filtered stream before its ending: what blocked_end makes of the
    events the client got is what Azure itself sent, a content_filter finish and [DONE]."""
    events = recorded(FILTERED_STREAM)
    *sent, (_, azure_end), (_, done) = events
    made = CHAT.blocked_end(sent[0][1], sent[-1][1], FILTER_RESULT)
    golden("apis/chat.blocked_end.sse", made)
    ending = decode(made)
    assert [d for _, d in ending][-1] == done == b"[DONE]"
    assert all(n is None for n, _ in ending) and len(ending) == 2
    ours, theirs = orjson.loads(ending[0][1]), orjson.loads(azure_end)
    assert ours == theirs  # every key and value, for this recorded ending


def test_blocked_end_takes_the_streams_own_ids() -> None:
    events = objects(recorded(AZURE_STREAM))
    annotation, content = orjson.dumps(events[0][1]), orjson.dumps(events[3][1])
    for last in (content, annotation):  # the prompt annotation chunk has id "" and object ""
        chunk = orjson.loads(decode(CHAT.blocked_end(annotation, last, {}))[0][1])
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["choices"] == [{"index": 0, "delta": {}, "logprobs": None,
                                     "finish_reason": "content_filter", "content_filter_results": {}}]
    chunk = orjson.loads(decode(CHAT.blocked_end(annotation, content, {}))[0][1])
    assert (chunk["id"], chunk["model"], chunk["created"]) == (
        "chatcmpl-Aau7xzmYfJIyXvEuPJF4LUW9PUfOW", "gpt-4o-2024-08-06", 1733358925)
    bare = orjson.loads(decode(CHAT.blocked_end(b"", b"", {}))[0][1])
    assert bare["object"] == "chat.completion.chunk"
    assert bare["choices"][0]["finish_reason"] == "content_filter"


def test_stream_error_is_an_error_event_the_openai_sdk_raises_on() -> None:
    last = recorded(AZURE_STREAM)[5][1]
    made = CHAT.stream_error("upstream_error", "The upstream stream failed: ClientPayloadError.", last)
    golden("apis/chat.stream_error.sse", made)
    [(name, data)] = decode(made)
    assert name is None
    error = orjson.loads(data)["error"]  # a truthy top-level "error": openai's SDKs raise APIError
    assert error == {"code": "upstream_error", "message": "The upstream stream failed: ClientPayloadError.",
                     "type": "server_error", "param": None}
