"""Image embeddings (gateway.apis.image_embeddings, Azure AI model inference
`/images/embeddings`). No image-embeddings traffic is among the recorded samples: the
request is what azure-ai-inference's ImageEmbeddingsClient sends for
`embed(input=[ImageEmbeddingInput(image=..., text=...)])`, and the answer has the
recorded Azure AI inference embeddings envelope (embeddings-float.json), which the
API shares with text embeddings."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.apis.image_embeddings import IMAGE_EMBEDDINGS
from gateway.core.errors import InvalidRequest
from policies import Usage
from tests.samples import sample, slot_paths

IMAGE = "data:image/png;base64,iVBORw0KGgo="


def request() -> dict[str, Any]:
    return {"input": [{"image": IMAGE, "text": "a logo"}, {"image": IMAGE}],
            "model": "Cohere-embed-v3-english",
            "encoding_format": "float", "dimensions": 1024, "input_type": "document"}


def test_good_bodies_pass() -> None:
    IMAGE_EMBEDDINGS.validate(request())
    IMAGE_EMBEDDINGS.validate({"input": [{"image": IMAGE}]})


@pytest.mark.parametrize(("param", "body"), [
    ("input", {"input": "a picture"}),
    ("input", {"input": {"image": IMAGE}}),
    ("input.0", {"input": [IMAGE]}),
    ("input.0.image", {"input": [{"text": "a logo"}]}),
    ("input.0.image", {"input": [{"image": ["x"]}]}),
    ("input.1.text", {"input": [{"image": IMAGE}, {"image": IMAGE, "text": ["a", "logo"]}]}),
    ("encoding_format", {"encoding_format": ["float"]}),
    ("dimensions", {"dimensions": 10.5}),
    ("model", {"model": 3}),
])
def test_each_wrong_type_names_its_param(param: str, body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        IMAGE_EMBEDDINGS.validate({**request(), **body})
    assert caught.value.param == param


def test_prompt_texts_are_the_captions_never_the_images() -> None:
    body = request()
    assert slot_paths(body, IMAGE_EMBEDDINGS.prompt_texts(body)) == [("input.0.text", "a logo")]
    assert IMAGE_EMBEDDINGS.prompt_parts(body) == ["a logo"]  # the image is not counted as text
    assert IMAGE_EMBEDDINGS.prompt_texts({"input": "x"}) == []


def test_nothing_is_generated_nor_streamed() -> None:
    body = {**request(), "stream": True}
    assert IMAGE_EMBEDDINGS.generates is False
    assert IMAGE_EMBEDDINGS.is_stream(body) is False
    assert IMAGE_EMBEDDINGS.prompt_framing(body) == 0
    assert IMAGE_EMBEDDINGS.max_output_tokens(body) is None
    assert IMAGE_EMBEDDINGS.outputs(body) == 1
    assert not IMAGE_EMBEDDINGS.stores(body)


def test_answer() -> None:
    answer = sample("embeddings-float.json")["azure_ai_inference"]
    before = copy.deepcopy(answer)
    assert IMAGE_EMBEDDINGS.usage(answer) == Usage(6, 0)
    assert not IMAGE_EMBEDDINGS.answer_error(answer)
    assert IMAGE_EMBEDDINGS.answer_error(sample("azure-inference-errors.json")["unknown_model"]["body"])
    assert IMAGE_EMBEDDINGS.completion_texts(answer) == []
    IMAGE_EMBEDDINGS.annotate(answer, {}, {})
    assert answer == before
