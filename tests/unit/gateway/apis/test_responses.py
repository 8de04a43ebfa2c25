"""The Responses API (gateway.apis.responses) against the recorded samples: two real
request bodies, Responses with reasoning, function calls and annotations, a stored
(background) response, OpenAI's text, function-call and error streams and Azure's text
stream (tests/fixtures/contract/README.md)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from gateway.apis.responses import RESPONSES
from gateway.core.errors import InvalidRequest
from gateway.core.sse import Event
from policies import Usage
from tests.samples import decode, golden, objects, raw, recorded, sample, slot_paths, unescape

TEXT_STREAM = "responses-stream.sse"
CALL_STREAM = "responses-stream-function-call.sse"
ERROR_STREAM = "responses-error-stream.sse"
STREAMS = (TEXT_STREAM, CALL_STREAM, ERROR_STREAM)


def requests() -> dict[str, dict[str, Any]]:
    return {k: v["body"] for k, v in sample("responses-create-request.json").items() if k != "_about"}


def azure_stream() -> list[Event]:
    """Azure's recorded stream kept only each event's data (one per line)."""
    return [(None, line) for line in raw("azure-openai-responses-stream.jsonl").splitlines() if line]


def follow_up() -> dict[str, Any]:
    """The recorded request's next turn, stateless: the recorded answer's output items
    replayed as input (reasoning, commentary, the function call), then the tool's output;
    with a structured-output format."""
    body = requests()["instructions_and_function_tool"]
    answer = sample("responses-create.json")
    body["input"] += answer["output"] + [
        {"type": "function_call_output", "call_id": "call_ALAJMWK9buNN7RXxxXbECcHa", "output": "Potatopolis"}]
    body["text"] = {"format": {"type": "json_schema", "name": "capital", "description": "The capital city",
                               "strict": True, "schema": {"type": "object", "additionalProperties": False,
                                                          "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}
    body.update(store=False, max_output_tokens=500)
    return body


def by_path(paths: list[tuple[str | None, str]]) -> list[tuple[str, str]]:
    return sorted((p or "(read-only)", v) for p, v in paths)


# --- request ------------------------------------------------------------------------
def test_recorded_requests_pass() -> None:
    for body in requests().values():
        RESPONSES.validate(body)
    RESPONSES.validate(follow_up())
    RESPONSES.validate({"input": "hi", "background": True, "previous_response_id": "resp_1"})


@pytest.mark.parametrize(("param", "body"), [
    ("input", {"input": 3}),
    ("input", {"input": {"role": "user"}}),
    ("instructions", {"instructions": ["be brief"]}),
    ("stream", {"stream": "false"}),
    ("max_output_tokens", {"max_output_tokens": "500"}),
    ("max_output_tokens", {"max_output_tokens": False}),
    ("store", {"store": 0}),
    ("background", {"background": "yes"}),
    ("previous_response_id", {"previous_response_id": 12}),
    ("tools", {"tools": {"type": "function"}}),
    ("tools.0", {"tools": ["get_capital"]}),
    ("model", {"model": 1}),
])
def test_each_wrong_type_names_its_param(param: str, body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        RESPONSES.validate({**follow_up(), **body})
    assert caught.value.param == param


def test_is_stream_and_usage_is_never_asked() -> None:
    body = requests()["instructions_and_function_tool"]
    assert not RESPONSES.is_stream(body)  # the recorded request said stream: false
    assert RESPONSES.is_stream({**body, "stream": True})
    before = copy.deepcopy(body)
    assert RESPONSES.ask_stream_usage(body) is False and body == before  # the terminal event has it


# --- prompt -------------------------------------------------------------------------
def test_prompt_texts_of_the_recorded_requests() -> None:
    tool, parts = requests().values()
    assert by_path(slot_paths(tool, RESPONSES.prompt_texts(tool))) == by_path([
        ("instructions", "Briefly narrate what you are about to do before calling each tool."),
        ("input.0.content", "What is the capital of PotatoLand?"),
        ("tools.0.name", "get_capital"),  # its description is null
        (None, "country"), (None, "country"), (None, "string"), (None, "object"),
    ])
    assert slot_paths(parts, RESPONSES.prompt_texts(parts)) == [
        ("instructions", ""), ("input.0.content.0.text", "hello")]  # the image is not text


def test_prompt_texts_of_a_replayed_turn() -> None:
    body = follow_up()
    found = by_path(slot_paths(body, RESPONSES.prompt_texts(body)))
    assert found == by_path([
        ("instructions", "Briefly narrate what you are about to do before calling each tool."),
        ("input.0.content", "What is the capital of PotatoLand?"),
        # input.1 is the reasoning item: encrypted, not text
        ("input.2.content.0.text", "I'll check the capital lookup tool for \"PotatoLand.\""),
        ("input.3.arguments", '{"country":"PotatoLand"}'),
        ("input.4.output", "Potatopolis"),
        ("tools.0.name", "get_capital"),
        (None, "country"), (None, "country"), (None, "string"), (None, "object"),
        ("text.format.description", "The capital city"),
        (None, "city"), (None, "city"), (None, "string"), (None, "object"),
    ])


def test_prompt_parts_framing_and_limits() -> None:
    body = follow_up()
    assert RESPONSES.prompt_parts(body) == [body["instructions"], body["input"], body["tools"]]
    assert RESPONSES.prompt_framing(body) - RESPONSES.prompt_framing({"input": body["input"][:1]}) == 4 * 4
    assert RESPONSES.prompt_framing({"input": "hi"}) == RESPONSES.prompt_framing({"input": [{}]})
    assert RESPONSES.max_output_tokens(body) == 500
    assert RESPONSES.max_output_tokens(requests()["input_text_parts"]) is None
    assert RESPONSES.outputs(body) == 1


# --- stored responses ---------------------------------------------------------------
def test_stores_unless_store_is_false() -> None:
    tool, _ = requests().values()
    assert RESPONSES.stores(tool)  # store defaults to true
    assert not RESPONSES.stores(follow_up())


def test_previous_response() -> None:
    assert RESPONSES.previous_response({"input": "x", "previous_response_id": "resp_094e"}) == "resp_094e"
    assert RESPONSES.previous_response({"input": "x", "previous_response_id": ""}) is None
    assert RESPONSES.previous_response(follow_up()) is None


def test_stored_id_from_the_answer_or_the_first_event() -> None:
    answer = sample("responses-create.json")
    assert RESPONSES.stored_id(answer) == answer["id"]
    events = objects(recorded(TEXT_STREAM))
    assert RESPONSES.stored_id(events[0][1]) == "resp_68d93041848c819e90d610c34d125a8f03aa6e5a972b3b23"
    assert [RESPONSES.stored_id(e) for _, e in events[1:]] == [None] * (len(events) - 1)
    assert RESPONSES.stored_id(sample("azure-openai-responses-content-filter.json")["prompt_filtered_400"]
                               ["body"]) is None
    assert RESPONSES.stored_id(sample("responses-lifecycle.json")["delete"]["body"]) == \
        "resp_6786a1bec27481909a17d673315b29f6"


def test_pending_while_a_background_job_runs() -> None:
    retrieved = sample("responses-lifecycle.json")["retrieve"]["body"]
    assert retrieved["background"] and not RESPONSES.pending(retrieved)  # done: its usage is final
    for status in ("queued", "in_progress"):
        assert RESPONSES.pending({**retrieved, "status": status, "usage": None})
    assert not RESPONSES.pending({**retrieved, "status": "incomplete"})


# --- whole answers ------------------------------------------------------------------
def test_usage_of_recorded_answers() -> None:
    assert RESPONSES.usage(sample("responses-create.json")) == Usage(63, 72, reasoning_tokens=29)
    assert RESPONSES.usage(sample("responses-create-text.json")) == Usage(14, 50)
    assert RESPONSES.usage(sample("responses-lifecycle.json")["retrieve"]["body"]) == Usage(15, 9)
    azure = sample("azure-openai-responses.json")
    assert RESPONSES.usage(azure) == Usage(azure["usage"]["input_tokens"], azure["usage"]["output_tokens"],
                                           cached_tokens=azure["usage"]["input_tokens_details"]["cached_tokens"],
                                           reasoning_tokens=azure["usage"]["output_tokens_details"]
                                           ["reasoning_tokens"])


def test_usage_cached_tokens_and_refusals() -> None:
    answer = sample("responses-create.json")
    answer["usage"]["input_tokens_details"]["cached_tokens"] = 40
    assert RESPONSES.usage(answer) == Usage(63, 72, cached_tokens=40, reasoning_tokens=29)
    for field, bogus in (("input_tokens", True), ("input_tokens", -63), ("output_tokens", "72"),
                         ("output_tokens", False)):
        broken = sample("responses-create.json")
        broken["usage"][field] = bogus
        assert RESPONSES.usage(broken) is None
    broken = sample("responses-create.json")
    broken["usage"]["output_tokens_details"]["reasoning_tokens"] = True
    assert RESPONSES.usage(broken) == Usage(63, 72)
    docs = sample("responses-incomplete.json")["stream_event_docs_example"]
    assert RESPONSES.usage(docs["response"]) is None  # usage: null


def test_answer_error() -> None:
    assert RESPONSES.answer_error(sample("azure-openai-responses-content-filter.json")["prompt_filtered_400"]
                                  ["body"])
    assert not RESPONSES.answer_error(sample("responses-create.json"))
    failed = objects(recorded(ERROR_STREAM))[-1][1]["response"]
    assert failed["status"] == "failed" and not RESPONSES.answer_error(failed)  # a Response, failed


def test_completion_texts_keyed_by_item_and_part() -> None:
    answer = sample("responses-create.json")
    texts = RESPONSES.completion_texts(answer)
    assert [(t.key, t.value) for t in texts] == [
        ((1, 0), "I'll check the capital lookup tool for \"PotatoLand.\""),
        ((2, "args"), '{"country":"PotatoLand"}')]
    annotated = sample("responses-create-annotations.json")
    for case, start in (("url_citation", "The tallest mountain in Alberta"), ("file_citation", "The Eiffel")):
        body = annotated[case]["body"]  # output 0 is the search call: no text
        [text] = RESPONSES.completion_texts(body)
        assert text.key == (1, 0) and text.value.startswith(start)


def test_block_completion_makes_the_answer_incomplete_for_content_filter() -> None:
    answer = sample("responses-create.json")
    RESPONSES.block_completion(answer, (1, 0), {"hate": {"filtered": True, "severity": "high"}})
    assert answer["output"][1]["content"][0]["text"] == ""
    assert answer["output"][2]["arguments"] == '{"country":"PotatoLand"}'
    assert answer["status"] == "incomplete"
    assert answer["incomplete_details"] == {"reason": "content_filter"}
    assert answer["incomplete_details"]["reason"] in sample("responses-incomplete.json")[
        "incomplete_details_reason_enum"]


def test_annotate_has_no_place_in_this_shape() -> None:
    answer = sample("azure-openai-responses.json")
    RESPONSES.annotate(answer, {"hate": {"filtered": False, "severity": "safe"}}, {})
    assert answer == sample("azure-openai-responses.json")


# --- streams ------------------------------------------------------------------------
def stream_usage(events: list[Event]) -> Usage | None:
    usage = None
    for _, data in events:
        if RESPONSES.may_carry_usage(data):
            usage = RESPONSES.stream_usage(orjson.loads(data), usage)
    return usage


def test_stream_usage_is_the_terminal_events() -> None:
    assert stream_usage(recorded(TEXT_STREAM)) == Usage(114, 15)
    assert stream_usage(recorded(CALL_STREAM)) == Usage(75, 155, reasoning_tokens=128)
    assert stream_usage(recorded(ERROR_STREAM)) is None  # response.failed: usage null
    terminal = orjson.loads(azure_stream()[-1][1])
    assert stream_usage(azure_stream()) == RESPONSES.usage(terminal["response"])
    for name in STREAMS:
        carriers = [orjson.loads(d)["type"] for _, d in recorded(name) if RESPONSES.may_carry_usage(d)]
        assert carriers == ([] if name == ERROR_STREAM else ["response.completed"])


def test_stream_usage_of_an_incomplete_response_and_what_is_no_count() -> None:
    completed = objects(recorded(TEXT_STREAM))[-1][1]
    incomplete = {**completed, "type": "response.incomplete"}
    assert RESPONSES.stream_usage(incomplete, None) == Usage(114, 15)
    before = Usage(1, 1)
    assert RESPONSES.stream_usage({**completed, "type": "response.in_progress"}, before) is before
    completed["response"]["usage"]["input_tokens"] = True
    assert RESPONSES.stream_usage(completed, before) is before


def test_nothing_is_dropped_and_there_is_no_end_marker() -> None:
    for name in STREAMS:
        for _, data in recorded(name):
            assert not RESPONSES.is_end(data)
            event = orjson.loads(data)
            assert not RESPONSES.drop_event(event, strip_usage=True)
            assert not RESPONSES.is_keepalive(event)
    assert RESPONSES.end() == b""


def generated(events: list[Event]) -> str:
    return unescape([p for _, data in events for p in RESPONSES.output_text(data)])


def test_output_text_is_what_the_done_events_say_was_generated() -> None:
    done = {e["type"]: e for _, e in objects(recorded(TEXT_STREAM))}
    assert generated(recorded(TEXT_STREAM)) == done["response.output_text.done"]["text"] == \
        "Current weather in New York City, USA: Sunny."
    done = {e["type"]: e for _, e in objects(recorded(CALL_STREAM))}
    assert generated(recorded(CALL_STREAM)) == done["response.function_call_arguments.done"]["arguments"]
    assert generated(recorded(ERROR_STREAM)) == ""
    assert generated(azure_stream()) == "Hello"


def deltas(events: list[Event]) -> dict[Any, str]:
    out: dict[Any, str] = {}
    for _, event in objects(events):
        text = RESPONSES.stream_delta(event)
        if text is not None:
            out[text.key] = out.get(text.key, "") + text.value
    return out


@pytest.mark.parametrize("name", [TEXT_STREAM, CALL_STREAM])
def test_stream_final_repeats_each_output_under_its_delta_key(name: str) -> None:
    """Every closing event's texts carry the key of the deltas of the same output, and the
    text those deltas add up to: a filter's released text can replace them."""
    streamed = deltas(recorded(name))
    assert streamed == ({(0, 0): "Current weather in New York City, USA: Sunny."} if name == TEXT_STREAM
                        else {(1, "args"): '{ "location": "New York City, USA" }'})
    finals: dict[str, list[tuple[Any, str]]] = {}
    for _, event in objects(recorded(name)):
        for text in RESPONSES.stream_final(event):
            finals.setdefault(event["type"], []).append((text.key, text.value))
    expected = sorted(streamed.items())
    closing = (["response.output_text.done", "response.content_part.done"] if name == TEXT_STREAM
               else ["response.function_call_arguments.done"])
    for kind in [*closing, "response.output_item.done", "response.completed"]:
        assert sorted(finals.pop(kind)) == expected, kind
    assert finals == {}  # no other event repeats text


def test_stream_final_slot_rewrites_the_event() -> None:
    event = next(e for _, e in objects(recorded(TEXT_STREAM)) if e["type"] == "response.completed")
    [text] = RESPONSES.stream_final(event)
    text.set("released")
    assert event["response"]["output"][0]["content"][0]["text"] == "released"


@pytest.mark.parametrize("name", STREAMS)
def test_encode_reframes_a_recorded_stream_byte_for_byte(name: str) -> None:
    events = recorded(name)
    assert all(n is not None for n, _ in events)
    assert b"".join(RESPONSES.encode(n, d) for n, d in events) + RESPONSES.end() == raw(name)


def test_encode_names_the_events_of_a_data_only_stream() -> None:
    """Azure's recording kept no event names: each gets its JSON type as name."""
    framed = b"".join(RESPONSES.encode(n, d) for n, d in azure_stream())
    events = decode(framed)
    assert [n for n, _ in events] == [orjson.loads(d)["type"].encode() for _, d in azure_stream()]
    assert [d for _, d in events] == [d for _, d in azure_stream()]
    assert RESPONSES.encode(None, b'{"type":"bad name\\n"}').startswith(b"event: message\n")
    assert RESPONSES.encode(None, b"[1]").startswith(b"event: message\n")


def test_blocked_end_is_a_terminal_incomplete_for_content_filter() -> None:
    """Cut the recorded text stream after five deltas: the closing event is the API's own
    response.incomplete, numbered after the last event sent, with the response the stream
    was created with, now incomplete for content_filter."""
    events = recorded(TEXT_STREAM)
    first, last = events[0][1], events[8][1]
    made = RESPONSES.blocked_end(first, last, {"violence": {"filtered": True, "severity": "medium"}})
    golden("apis/responses.blocked_end.sse", made)
    [(name, data)] = decode(made)
    assert name == b"response.incomplete"
    ours = orjson.loads(data)
    docs = sample("responses-incomplete.json")["stream_event_docs_example"]
    assert set(ours) == set(docs) and ours["type"] == docs["type"] == "response.incomplete"
    assert ours["sequence_number"] == orjson.loads(last)["sequence_number"] + 1 == 9
    created = orjson.loads(first)["response"]
    response = ours["response"]
    assert set(response) == set(created)
    assert {k: type(v) for k, v in response.items() if created[k] is not None and k not in (
        "incomplete_details",)} == {k: type(v) for k, v in created.items() if v is not None}
    assert response["id"] == created["id"] and response["object"] == "response"
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "content_filter"}
    assert response["output"] == [] and response["usage"] is None
    bare = orjson.loads(decode(RESPONSES.blocked_end(b"", b"", {}))[0][1])
    assert bare["sequence_number"] == 1 and bare["response"]["object"] == "response"


def test_stream_error_is_the_recorded_error_events_shape() -> None:
    events = recorded(ERROR_STREAM)
    their_name, their_data = events[2]
    made = RESPONSES.stream_error("upstream_error", "The upstream stream failed: ClientPayloadError.",
                                  events[1][1])
    golden("apis/responses.stream_error.sse", made)
    [(name, data)] = decode(made)
    ours, theirs = orjson.loads(data), orjson.loads(their_data)
    assert name == their_name == b"error"
    assert set(ours) == set(theirs) and set(ours["error"]) == set(theirs["error"])
    assert ours["sequence_number"] == theirs["sequence_number"] == 2
    assert ours["error"]["code"] == "upstream_error" and ours["error"]["param"] is None
    assert orjson.loads(decode(RESPONSES.stream_error("c", "m", b""))[0][1])["sequence_number"] == 0
