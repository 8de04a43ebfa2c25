"""The URLs that are not a model's: model lists, model info, and the surfaces the
gateway deliberately does not serve. Each API's own routes are in its adapter
module (`gateway.apis`)."""

from __future__ import annotations

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
    "fine_tuning": "fine-tuning",
    "audio": "the audio endpoints",
    "images": "image generation",
    "moderations": "the moderation endpoint",
    "extensions": "Azure OpenAI extensions",
}
UNSUPPORTED_PREFIXES = ("/v1", "/openai/v1", "/openai", "/openai/deployments/{deployment}")

