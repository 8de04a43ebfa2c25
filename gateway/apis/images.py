"""Images (`/images/generations`, JSON; `/images/edits`, a multipart form with one or more
images and an optional mask): OpenAI's and Azure OpenAI's shape. Answers are
`{created, data: [{b64_json | url, revised_prompt?}], usage?}`; gpt-image-1 reports
tokens in `usage` (input, output, their details), dall-e-3 reports none and is priced
per image by size and quality. Streams (gpt-image-1, `stream: true`) are `event:` +
`data:` partial images ending with a `*.completed` event that carries the usage.

A prompt a content filter refuses gets the chat-shaped 400 (`content_filter`,
`innererror.content_filter_result`) with Azure's image shape beside it (`inner_error`
with `content_filter_results`, as `dalleErrorResponse` has it)."""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from gateway.apis.base import ModelRoute
from gateway.apis.media import MediaApi, error_event, text, truthy, whole
from gateway.apis.shapes import named_event, usage_counts
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies import ContentBlocked, PolicyError, Usage
from policies.wire import Results, Slot, Text

# gpt-image-1's output tokens per image by quality and size (OpenAI's price table):
# reserved before the answer says what it cost.
_IMAGE_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
_COMPLETED = re.compile(rb'"type"\s*:\s*"image_(?:generation|edit)\.completed"')


class GenerationBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    prompt: StrictStr
    n: StrictInt | None = None
    size: StrictStr | None = None
    quality: StrictStr | None = None
    response_format: StrictStr | None = None
    stream: StrictBool | None = None
    partial_images: StrictInt | None = None
    user: StrictStr | None = None


class EditBody(BaseModel):
    """The text fields of an edit's form: every value arrives as text ("2", "true")."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    prompt: str
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    stream: bool | None = None
    partial_images: int | None = None


class ImagePromptBlocked(ContentBlocked):
    """A refused image prompt: the chat shape, with Azure's image shape beside it."""

    def details(self) -> dict[str, Any]:
        return {**super().details(),
                "inner_error": {"code": "ResponsibleAIPolicyViolation",
                                "content_filter_results": self.result}}


class ImageGenerations(MediaApi):
    name = "images.generations"
    operation = Operation.IMAGE_GENERATIONS
    gen_ai_operation = "generate_content"
    output_type = "image"
    generates = True
    form = False
    Body: ClassVar[type[BaseModel]] = GenerationBody
    known = frozenset({"model", "prompt", "n", "size", "quality", "response_format", "style",
                       "user", "background", "moderation", "output_compression", "output_format",
                       "partial_images", "stream", "safety_identifier"})

    def is_stream(self, body: dict[str, Any]) -> bool:
        return truthy(body.get("stream"))

    # --- prompt -----------------------------------------------------------------------
    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        return [(body, "prompt")] if isinstance(body.get("prompt"), str) else []

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        quality = text(body.get("quality"))
        by_size = _IMAGE_TOKENS.get("high" if quality in ("", "auto") else quality)
        # "auto" or a size not in the table: the largest of the quality's sizes.
        return by_size.get(text(body.get("size")), max(by_size.values())) if by_size else None

    def outputs(self, body: dict[str, Any]) -> int:
        n = whole(body.get("n"))
        return n if n is not None and n > 0 else 1

    # --- units ------------------------------------------------------------------------
    def expected(self, body: dict[str, Any], seconds: float | None) -> Usage:
        return Usage(images=self.outputs(body), image_size=text(body.get("size")),
                     image_quality=text(body.get("quality")))

    def used(self, body: dict[str, Any], usage: Usage | None, seconds: float | None) -> Usage:
        if usage is None:  # an answer that said nothing (a stream cut short): as asked
            usage = Usage(images=self.outputs(body), by_units=True)
        usage.image_size = usage.image_size or text(body.get("size"))
        usage.image_quality = usage.image_quality or text(body.get("quality"))
        return usage

    def blocked(self, exc: ContentBlocked) -> PolicyError:
        return ImagePromptBlocked(exc.message, result=exc.result)

    # --- whole answers ----------------------------------------------------------------
    def usage(self, body: dict[str, Any]) -> Usage | None:
        data = body.get("data")
        images = len(data) if isinstance(data, list) else 0
        found = image_usage(body.get("usage"))
        usage = found or Usage(by_units=True)
        usage.images = images
        usage.image_size, usage.image_quality = text(body.get("size")), text(body.get("quality"))
        return usage

    def answer_error(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("error"), dict) and "data" not in body

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        return []  # an image is not text

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        """No text generated, none to block."""

    def annotate(self, body: dict[str, Any], prompt: Results, outputs: dict[Hashable, Results]) -> None:
        # Azure's places on dall-e-3 answers: per image, the prompt's and the image's results.
        data = body.get("data")
        for i, item in enumerate(data if isinstance(data, list) else []):
            if isinstance(item, dict):
                item["prompt_filter_results"] = prompt
                item["content_filter_results"] = outputs.get(i, {})

    # --- streams ----------------------------------------------------------------------
    @staticmethod
    def may_carry_usage(data: bytes) -> bool:
        return _COMPLETED.search(data) is not None  # each completed image is counted

    def stream_usage(self, event: dict[str, Any], usage: Usage | None) -> Usage | None:
        kind = event.get("type")
        if not isinstance(kind, str) or not kind.endswith(".completed"):
            return usage
        found = image_usage(event.get("usage"))
        images = (usage.images if usage is not None else 0) + 1
        # The tokens of the last completed event that has them (its usage is the request's).
        out = found or usage or Usage(by_units=True)
        out.images = images
        out.image_size = text(event.get("size")) or (usage.image_size if usage else "")
        out.image_quality = text(event.get("quality")) or (usage.image_quality if usage else "")
        return out

    def encode(self, name: bytes | None, data: bytes) -> bytes:
        return named_event(name, data)

    def end(self) -> bytes:
        return b""  # the stream ends after its completed event

    def stream_delta(self, event: dict[str, Any]) -> Text | None:
        return None

    def stream_final(self, event: dict[str, Any]) -> list[Text]:
        return []

    def blocked_end(self, first: bytes, last: bytes, result: Results) -> bytes:
        message = "The output was filtered due to the content management policy."
        return named_event(b"error", error_event("content_filter", message,
                                                 content_filter_result=result))

    def stream_error(self, code: str, message: str, last: bytes) -> bytes:
        return named_event(b"error", error_event(code, message))

    def stream_facts(self, data: bytes) -> tuple[str | None, str | None]:
        return None, None


class ImageEdits(ImageGenerations):
    name = "images.edits"
    operation = Operation.IMAGE_EDITS
    form = True
    files = ("image", "image[]", "mask")
    checked = frozenset({"prompt"})
    Body = EditBody
    known = ImageGenerations.known | {"image", "image[]", "mask", "input_fidelity"}


def image_usage(usage: Any) -> Usage | None:
    """gpt-image-1's usage: input (text and image) and output tokens."""
    return usage_counts(usage, "input_tokens", "output_tokens", "input_tokens_details",
                        "output_tokens_details")


GENERATIONS = ImageGenerations()
EDITS = ImageEdits()

ROUTES = tuple(
    ModelRoute(path.format(op=op), api, flavour)
    for op, api in (("generations", GENERATIONS), ("edits", EDITS))
    for path, flavour in (("/v1/images/{op}", Flavour.OPENAI),
                          ("/openai/v1/images/{op}", Flavour.OPENAI),
                          ("/openai/deployments/{{deployment}}/images/{op}", Flavour.AZURE_OPENAI))
)
