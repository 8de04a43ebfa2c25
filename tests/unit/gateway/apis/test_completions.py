"""Legacy Completions (gateway.apis.completions): chat's streams and answers with
`prompt`, `suffix` and `choices[].text`.

No Completions traffic is among the recorded samples (tests/fixtures/contract): the
bodies here follow the API reference (openai-openapi CreateCompletionRequest/Response)
and reuse recorded chat values where the two APIs share them."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from gateway.apis.completions import COMPLETIONS
from gateway.core.errors import InvalidRequest
from policies import Usage
from tests.samples import decode, golden, sample, slot_paths, unescape

REQUEST: dict[str, Any] = {"model": "gpt-35-turbo-instruct", "prompt": "Say this is a test",
                           "suffix": " -- the end", "max_tokens": 7, "temperature": 0, "n": 2,
                           "best_of": 3, "stream": True}
ANSWER: dict[str, Any] = {
    "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7", "object": "text_completion", "created": 1589478378,
    "model": "gpt-35-turbo-instruct", "system_fingerprint": "fp_44709d6fcb",
    "choices": [{"text": "\n\nThis is indeed a test", "index": 0, "logprobs": None,
                 "finish_reason": "length"},
                {"text": "\n\nThis is a test", "index": 1, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}


def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"id": "cmpl-7iA7iJjj8V2zOkCGvWF2hAkDWBQZe", "object": "text_completion",
            "created": 1690759702, "model": "gpt-3.5-turbo-instruct",
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}


STREAM = b"".join(COMPLETIONS.encode(None, orjson.dumps(e)) for e in (
    chunk("This"), chunk(" is"), chunk(" a \"test\""), chunk("", "stop"),
    {**chunk(""), "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}},
)) + COMPLETIONS.end()


def test_good_bodies_pass() -> None:
    COMPLETIONS.validate(REQUEST)
    COMPLETIONS.validate({"prompt": ["one", "two"]})
    COMPLETIONS.validate({"prompt": [[1212, 318], [257, 1332]]})  # token arrays


@pytest.mark.parametrize(("param", "body"), [
    ("prompt", {"prompt": 42}),
    ("prompt", {"prompt": {"text": "x"}}),
    ("suffix", {"suffix": ["x"]}),
    ("best_of", {"best_of": "3"}),
    ("max_tokens", {"max_tokens": "7"}),
    ("stream", {"stream": "yes"}),
    ("temperature", {"temperature": "0"}),
])
def test_each_wrong_type_names_its_param(param: str, body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        COMPLETIONS.validate({**REQUEST, **body})
    assert caught.value.param == param


def test_a_missing_prompt_is_named() -> None:
    with pytest.raises(InvalidRequest) as caught:
        COMPLETIONS.validate({"model": "m"})
    assert caught.value.param == "prompt"


def test_prompt_texts_are_the_prompt_and_the_suffix() -> None:
    body = dict(REQUEST)
    assert slot_paths(body, COMPLETIONS.prompt_texts(body)) == [
        ("prompt", "Say this is a test"), ("suffix", " -- the end")]
    listed: dict[str, Any] = {"prompt": ["one", [1212, 318], "two"]}
    assert slot_paths(listed, COMPLETIONS.prompt_texts(listed)) == [("prompt.0", "one"), ("prompt.2", "two")]
    assert COMPLETIONS.prompt_texts({"prompt": [[1212, 318]]}) == []  # tokens are not text


def test_prompt_parts_framing_limits_and_outputs() -> None:
    assert COMPLETIONS.prompt_parts(REQUEST) == ["Say this is a test", " -- the end"]
    assert COMPLETIONS.prompt_framing(REQUEST) == 1
    assert COMPLETIONS.max_output_tokens(REQUEST) == 7
    assert COMPLETIONS.max_output_tokens({"prompt": "x", "max_completion_tokens": 9}) is None
    # best_of are generated (and billed), n returned: the larger is what is generated
    assert COMPLETIONS.outputs(REQUEST) == 3
    assert COMPLETIONS.outputs({"prompt": "x", "n": 2}) == 2
    assert COMPLETIONS.outputs({"prompt": "x"}) == 1


def test_whole_answer() -> None:
    answer = copy.deepcopy(ANSWER)
    assert COMPLETIONS.usage(answer) == Usage(5, 7)
    assert not COMPLETIONS.answer_error(answer)
    assert COMPLETIONS.answer_error(sample("azure-openai-429.json"))
    texts = COMPLETIONS.completion_texts(answer)
    assert [(t.key, t.value) for t in texts] == [(0, "\n\nThis is indeed a test"), (1, "\n\nThis is a test")]
    COMPLETIONS.block_completion(answer, 1, {})
    assert answer["choices"][1] == {"text": "", "index": 1, "logprobs": None,
                                    "finish_reason": "content_filter"}
    assert answer["choices"][0]["text"] == "\n\nThis is indeed a test"


def test_stream() -> None:
    events = decode(STREAM)
    usage = None
    pieces: list[bytes] = []
    texts = ""
    for _, data in events:
        if COMPLETIONS.is_end(data):
            break
        pieces += COMPLETIONS.output_text(data)
        event = orjson.loads(data)
        if COMPLETIONS.may_carry_usage(data):
            usage = COMPLETIONS.stream_usage(event, usage)
            assert COMPLETIONS.drop_event(event, strip_usage=True)
        if (text := COMPLETIONS.stream_delta(event)) is not None:
            assert text.key == 0
            texts += text.value
    assert usage == Usage(5, 4)
    assert unescape(pieces) == texts == 'This is a "test"'
    assert COMPLETIONS.ask_stream_usage(dict(REQUEST)) is True


def test_blocked_end_is_a_text_completion_chunk() -> None:
    """Not chat's `delta`: a Completions client reads choices[].text."""
    events = decode(STREAM)
    made = COMPLETIONS.blocked_end(events[0][1], events[1][1], {"violence": {"filtered": True,
                                                                           "severity": "high"}})
    golden("apis/completions.blocked_end.sse", made)
    ending = decode(made)
    assert [d for _, d in ending][-1] == b"[DONE]" and len(ending) == 2
    ours = orjson.loads(ending[0][1])
    theirs = chunk("", "content_filter")
    assert set(ours) == set(theirs) and set(ours["choices"][0]) == set(theirs["choices"][0]) | {
        "content_filter_results"}
    assert ours["object"] == "text_completion" and ours["choices"][0]["text"] == ""
    assert ours["choices"][0]["finish_reason"] == "content_filter"
    assert ours["id"] == theirs["id"]
    assert orjson.loads(decode(COMPLETIONS.blocked_end(b"", b"", {}))[0][1])["object"] == "text_completion"


def test_stream_error() -> None:
    made = COMPLETIONS.stream_error("upstream_timeout", "The upstream stream stalled.", b"")
    [(name, data)] = decode(made)
    assert name is None
    assert orjson.loads(data) == {"error": {"code": "upstream_timeout",
                                            "message": "The upstream stream stalled.",
                                            "type": "server_error", "param": None}}
