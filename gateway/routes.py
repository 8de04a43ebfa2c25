"""The URL table: which route, which client flavour, where the model name comes from."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.flavours import Flavour


@dataclass(frozen=True, slots=True)
class ModelRoute:
    path: str
    operation: str
    flavour: Flavour
    # /models/* also read the model from x-ms-model-mesh-model-name / azureml-model-deployment.
    model_from_headers: bool = False


MODEL_ROUTES = (
    ModelRoute("/models/chat/completions", "chat/completions", Flavour.AZURE_INFERENCE, True),
    ModelRoute("/models/embeddings", "embeddings", Flavour.AZURE_INFERENCE, True),
    ModelRoute("/models/images/embeddings", "images/embeddings", Flavour.AZURE_INFERENCE, True),
    ModelRoute("/openai/deployments/{deployment}/chat/completions", "chat/completions",
               Flavour.AZURE_OPENAI),
    ModelRoute("/openai/deployments/{deployment}/completions", "completions", Flavour.AZURE_OPENAI),
    ModelRoute("/openai/deployments/{deployment}/embeddings", "embeddings", Flavour.AZURE_OPENAI),
    ModelRoute("/openai/v1/chat/completions", "chat/completions", Flavour.OPENAI),
    ModelRoute("/openai/v1/completions", "completions", Flavour.OPENAI),
    ModelRoute("/openai/v1/embeddings", "embeddings", Flavour.OPENAI),
    ModelRoute("/v1/chat/completions", "chat/completions", Flavour.OPENAI),
    ModelRoute("/v1/completions", "completions", Flavour.OPENAI),
    ModelRoute("/v1/embeddings", "embeddings", Flavour.OPENAI),
)

MODEL_LISTS = ("/v1/models", "/openai/v1/models")
MODEL_INFO = "/models/info"

# Surfaces the gateway deliberately does not serve, and how to name them to the caller.
UNSUPPORTED = {
    "batches": "the Batch API",
    "files": "the Files API",
    "uploads": "the Uploads API",
    "assistants": "the Assistants API",
    "threads": "the Assistants API (threads)",
    "vector_stores": "vector stores",
    "realtime": "the Realtime API",
    "responses": "the Responses API",
    "fine_tuning": "fine-tuning",
    "audio": "the audio endpoints",
    "images": "image generation",
    "moderations": "the moderation endpoint",
    "extensions": "Azure OpenAI extensions",
}
UNSUPPORTED_PREFIXES = ("/v1", "/openai/v1", "/openai", "/openai/deployments/{deployment}")


def flavour_of_path(path: str) -> Flavour:
    if path.startswith("/openai/deployments/"):
        return Flavour.AZURE_OPENAI
    if path.startswith("/models"):
        return Flavour.AZURE_INFERENCE
    return Flavour.OPENAI
