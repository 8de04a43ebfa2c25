"""The images adapters against the recorded wire samples: gpt-image-1's token usage in a
whole answer and in its streamed `*.completed` event, dall-e-3's answers priced per
image, the edit form's text fields, the reservation table, and how a refused prompt and
Azure's filter annotations look."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.apis import images
from gateway.apis.images import EDITS, GENERATIONS, ImagePromptBlocked
from gateway.core.errors import InvalidRequest
from gateway.core.sse import Decoder
from policies import ContentBlocked, Usage
from policies.ratelimit import PricingConfig, cost_micros

SAMPLES = Path(__file__).resolve().parents[3] / "fixtures" / "contract"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def events(name: str) -> list[tuple[bytes | None, bytes]]:
    decoder = Decoder()
    return decoder.feed((SAMPLES / name).read_bytes()) + decoder.close()


def test_gpt_image_1_reports_tokens_and_its_images() -> None:
    body = sample("images-generations.json")["gpt_image_1"]["body"]
    usage = GENERATIONS.usage(body)
    assert usage == Usage(11, 6240, images=1, image_size="1024x1536", image_quality="high")
    two = GENERATIONS.usage(sample("images-generations.json")["gpt_image_1_n2_webp_transparent"]["body"])
    assert two is not None and (two.prompt_tokens, two.completion_tokens, two.images) == (22, 12480, 2)
    old = GENERATIONS.usage(sample("images-generations.json")["gpt_image_1_2025_09"]["body"])
    assert old is not None and old.completion_tokens == 3168 and not old.by_units
    assert not GENERATIONS.answer_error(body)


def test_dall_e_3_reports_no_tokens_and_is_priced_per_image_by_size_and_quality() -> None:
    request = {"prompt": "An isolated stop sign.", "model": "dall-e-3", "size": "1792x1024",
               "quality": "hd"}
    for case in ("dall_e_3_url", "dall_e_3_b64_json"):
        answer = sample("images-generations-dalle3.json")[case]["body"]
        usage = GENERATIONS.used(request, GENERATIONS.usage(answer), None)
        assert (usage.images, usage.by_units, usage.total) == (1, True, 0)
        assert (usage.image_size, usage.image_quality) == ("1792x1024", "hd")
    pricing = PricingConfig(per_image=[{"size": "1024x1024", "quality": "standard", "price": 0.04},
                                       {"quality": "hd", "price": 0.12}, {"price": 0.08}])
    hd = Usage(images=2, image_size="1792x1024", image_quality="hd", by_units=True)
    assert cost_micros(hd, pricing) == 240_000
    standard = Usage(images=1, image_size="1024x1024", image_quality="standard", by_units=True)
    assert cost_micros(standard, pricing) == 40_000
    assert cost_micros(Usage(images=1, by_units=True), pricing) == 80_000  # the catch-all
    # Reported tokens price a request by tokens alone, its images still counted.
    tokens = PricingConfig(input_per_million=5, output_per_million=40, per_image=[{"price": 1}])
    assert cost_micros(Usage(11, 6240, images=1), tokens) == 11 * 5 + 6240 * 40


def test_the_streamed_completed_event_carries_the_usage() -> None:
    usage = None
    names = []
    for name, data in events("images-generations-stream.sse"):
        names.append(name)
        assert not GENERATIONS.is_end(data)
        if GENERATIONS.may_carry_usage(data):
            usage = GENERATIONS.stream_usage(orjson.loads(data), usage)
    assert names == [b"image_generation.partial_image"] * 2 + [b"image_generation.completed"]
    assert usage == Usage(50, 50, images=1, image_size="1024x1024", image_quality="high")
    # Relayed in its own framing, no [DONE] added.
    assert GENERATIONS.encode(b"image_generation.completed", b"{}") == \
        b"event: image_generation.completed\ndata: {}\n\n"
    assert GENERATIONS.end() == b""


def test_an_edit_reads_its_form_fields_as_text() -> None:
    fields = {"prompt": "Add a red hat", "model": "gpt-image-1", "n": "2", "size": "1024x1024",
              "quality": "low", "stream": "true"}
    EDITS.validate(fields)
    assert EDITS.is_stream(fields) and EDITS.outputs(fields) == 2
    assert EDITS.max_output_tokens(fields) == 272
    assert EDITS.expected(fields, None) == Usage(images=2, image_size="1024x1024", image_quality="low")
    assert EDITS.prompt_texts(fields) == [(fields, "prompt")]
    assert EDITS.form and "prompt" in EDITS.checked and "image[]" in EDITS.files
    with pytest.raises(InvalidRequest, match="prompt"):
        EDITS.validate({"model": "gpt-image-1"})
    with pytest.raises(InvalidRequest, match="n"):  # JSON is typed: a count is a number
        GENERATIONS.validate({"prompt": "x", "n": "2"})


def test_the_reservation_follows_gpt_image_1s_table() -> None:
    assert GENERATIONS.max_output_tokens({"quality": "high", "size": "1024x1536"}) == 6240
    assert GENERATIONS.max_output_tokens({"quality": "medium", "size": "auto"}) == 1584
    assert GENERATIONS.max_output_tokens({}) == 6240  # auto: the dearest
    assert GENERATIONS.max_output_tokens({"quality": "hd"}) is None  # dall-e-3: no tokens


def test_a_refused_prompt_reads_as_azures_image_filter_and_as_chats() -> None:
    result = {"violence": {"filtered": True, "severity": "low"}}
    blocked = GENERATIONS.blocked(ContentBlocked("The prompt was filtered.", result=result))
    assert isinstance(blocked, ImagePromptBlocked) and blocked.code == "content_filter"
    details = blocked.details()
    azure = sample("azure-openai-images-content-filter.json")["dall_e_3_with_revised_prompt"]["body"]
    assert details["inner_error"]["code"] == azure["error"]["inner_error"]["code"]
    assert details["inner_error"]["content_filter_results"] == result
    assert details["innererror"] == {"code": "ResponsibleAIPolicyViolation",
                                     "content_filter_result": result}


def test_filter_results_go_where_azure_puts_them() -> None:
    body = sample("images-generations-dalle3.json")["dall_e_3_url"]["body"]
    safe = {"hate": {"filtered": False, "severity": "safe"}}
    GENERATIONS.annotate(body, safe, {0: safe})
    assert body["data"][0]["prompt_filter_results"] == safe
    assert body["data"][0]["content_filter_results"] == safe
    assert GENERATIONS.completion_texts(body) == []


def test_routes_on_the_three_paths() -> None:
    paths = {r.path for r in images.ROUTES}
    assert paths == {f"{prefix}/images/{op}" for op in ("generations", "edits") for prefix in
                     ("/v1", "/openai/v1", "/openai/deployments/{deployment}")}
