"""Image embeddings (Azure AI model inference `/images/embeddings`): `input` is a
list of `{image, text?}` items; the optional texts are what a filter reads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

from gateway.apis.base import ModelRoute
from gateway.apis.embeddings import Embeddings, EmbeddingsBody
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies.wire import Slot


class ImageInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    image: StrictStr  # a data: URL
    text: StrictStr | None = None


class ImageEmbeddingsBody(EmbeddingsBody):
    input: list[ImageInput]
    encoding_format: StrictStr | None = None
    dimensions: StrictInt | None = None


class ImageEmbeddings(Embeddings):
    name = "images.embeddings"
    gen_ai_operation = "embeddings"
    operation = Operation.IMAGE_EMBEDDINGS
    Body = ImageEmbeddingsBody
    known = frozenset({"model", "input", "encoding_format", "dimensions", "input_type"})

    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        items = body.get("input")
        if not isinstance(items, list):
            return []
        return [(item, "text") for item in items
                if isinstance(item, dict) and isinstance(item.get("text"), str)]

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        # The image itself is not text: count the optional captions only.
        return [t[0][t[1]] for t in self.prompt_texts(body)]


IMAGE_EMBEDDINGS = ImageEmbeddings()

ROUTES = (
    ModelRoute("/models/images/embeddings", IMAGE_EMBEDDINGS, Flavour.AZURE_INFERENCE,
               model_from_headers=True),
)
