"""Embeddings (gateway.apis.embeddings) against the recorded answers of Azure OpenAI and
Azure AI inference, float and base64 (tests/fixtures/contract: embeddings-*.json). No
request body was recorded; the requests are what the openai SDK sends (encoding_format
base64 unless asked otherwise) and the API reference's other input forms."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.apis.embeddings import EMBEDDINGS
from gateway.core.errors import InvalidRequest
from policies import Usage
from tests.samples import sample, slot_paths

REQUEST: dict[str, Any] = {"input": "This is a test.", "model": "ada", "encoding_format": "base64"}
ANSWERS = [(f, envelope) for f in ("embeddings-float.json", "embeddings-base64.json")
           for envelope in ("azure_openai", "azure_ai_inference")]


def test_good_bodies_pass() -> None:
    EMBEDDINGS.validate(REQUEST)
    EMBEDDINGS.validate({"input": ["one", "two"], "dimensions": 256, "user": "u", "input_type": "query"})
    EMBEDDINGS.validate({"input": [[1212, 318, 257]]})


@pytest.mark.parametrize(("param", "body"), [
    ("input", {"input": 5}),
    ("input", {"input": {"text": "x"}}),
    ("model", {"model": 1}),
    ("user", {"user": True}),
    ("encoding_format", {"encoding_format": 1}),
    ("dimensions", {"dimensions": "256"}),
    ("dimensions", {"dimensions": True}),
])
def test_each_wrong_type_names_its_param(param: str, body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        EMBEDDINGS.validate({**REQUEST, **body})
    assert caught.value.param == param


def test_never_a_stream() -> None:
    body = {**REQUEST, "stream": True}
    assert EMBEDDINGS.is_stream(body) is False
    assert EMBEDDINGS.ask_stream_usage(body) is False and body == {**REQUEST, "stream": True}


def test_prompt_texts_are_the_inputs_that_are_text() -> None:
    body = dict(REQUEST)
    assert slot_paths(body, EMBEDDINGS.prompt_texts(body)) == [("input", "This is a test.")]
    listed: dict[str, Any] = {"input": ["one", [1212, 318], "two"]}
    assert slot_paths(listed, EMBEDDINGS.prompt_texts(listed)) == [("input.0", "one"), ("input.2", "two")]
    assert EMBEDDINGS.prompt_texts({"input": [[1212, 318]]}) == []


def test_nothing_is_generated() -> None:
    assert EMBEDDINGS.generates is False
    assert EMBEDDINGS.prompt_parts(REQUEST) == ["This is a test."]
    assert EMBEDDINGS.prompt_framing(REQUEST) == 0
    assert EMBEDDINGS.max_output_tokens({**REQUEST, "max_tokens": 5}) is None
    assert EMBEDDINGS.outputs({**REQUEST, "n": 3}) == 1


@pytest.mark.parametrize(("name", "envelope"), ANSWERS)
def test_recorded_answers(name: str, envelope: str) -> None:
    answer = sample(name)[envelope]
    before = copy.deepcopy(answer)
    assert EMBEDDINGS.usage(answer) == (Usage(4, 0) if envelope == "azure_openai" else Usage(6, 0))
    assert not EMBEDDINGS.answer_error(answer)
    assert EMBEDDINGS.completion_texts(answer) == []
    EMBEDDINGS.block_completion(answer, 0, {"hate": {"filtered": True, "severity": "high"}})
    EMBEDDINGS.annotate(answer, {"hate": {"filtered": False, "severity": "safe"}}, {})
    assert answer == before  # nothing generated: nothing blocked, no place for results
    assert EMBEDDINGS.stored_id(answer) is None and not EMBEDDINGS.pending(answer)


def test_usage_refuses_counts_that_are_not_counts() -> None:
    for bogus in (True, -4, "4", None):
        answer = sample("embeddings-float.json")["azure_openai"]
        answer["usage"]["prompt_tokens"] = bogus
        assert EMBEDDINGS.usage(answer) is None


def test_answer_error() -> None:
    assert EMBEDDINGS.answer_error(sample("azure-openai-429.json"))
    errors = sample("azure-inference-errors.json")
    assert EMBEDDINGS.answer_error(errors["DeploymentNotFound"]["body"])
    assert not EMBEDDINGS.answer_error({"error": {"message": "x"}, "data": []})


def test_the_stream_methods_are_never_asked() -> None:
    for call in (lambda: EMBEDDINGS.encode(None, b"{}"), lambda: EMBEDDINGS.stream_usage({}, None),
                 lambda: EMBEDDINGS.blocked_end(b"", b"", {}), lambda: EMBEDDINGS.stream_error("c", "m", b""),
                 lambda: EMBEDDINGS.is_end(b"[DONE]"), EMBEDDINGS.end):
        with pytest.raises(AssertionError, match="has no streams"):
            call()
