"""Embeddings (`/embeddings`): text in, vectors out; nothing generated, never
streamed. The openai SDK asks for base64 vectors by default: passed through."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

from gateway.apis.base import Api, GeneratesNothing, ModelRoute, NeverStreams, StoresNothing
from gateway.apis.chat import openai_usage
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies import Usage
from policies.wire import Slot


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    user: StrictStr | None = None
    input: StrictStr | list[Any]
    encoding_format: StrictStr | None = None
    dimensions: StrictInt | None = None


class Embeddings(NeverStreams, GeneratesNothing, StoresNothing, Api):
    name = "embeddings"
    gen_ai_operation = "embeddings"
    operation = Operation.EMBEDDINGS
    Body = EmbeddingsBody
    known = frozenset({"model", "user", "input", "encoding_format", "dimensions", "input_type"})

    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        value = body.get("input")
        if isinstance(value, str):
            return [(body, "input")]
        if isinstance(value, list):
            return [(value, i) for i, v in enumerate(value) if isinstance(v, str)]
        return []

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return [body.get("input")]

    def usage(self, body: dict[str, Any]) -> Usage | None:
        return openai_usage(body.get("usage"))

    def answer_error(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("error"), dict) and "data" not in body


EMBEDDINGS = Embeddings()

ROUTES = (
    ModelRoute("/models/embeddings", EMBEDDINGS, Flavour.AZURE_INFERENCE, model_from_headers=True),
    ModelRoute("/openai/deployments/{deployment}/embeddings", EMBEDDINGS, Flavour.AZURE_OPENAI),
    ModelRoute("/openai/v1/embeddings", EMBEDDINGS, Flavour.OPENAI),
    ModelRoute("/v1/embeddings", EMBEDDINGS, Flavour.OPENAI),
)
