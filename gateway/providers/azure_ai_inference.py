"""The Azure AI model inference API (`provider: azure-ai-inference`): Foundry's
serverless and managed models (Mistral, Llama, Cohere, DeepSeek, ...) at
`{url}/models/{op}?api-version=`, the model named in the body. Keys go in `api-key`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from gateway.providers.base import Provider

if TYPE_CHECKING:
    from gateway.config.models import BackendConfig

API_VERSION = "2024-05-01-preview"


class AzureAIInference(Provider):
    name = "azure-ai-inference"
    operations = frozenset({Operation.CHAT, Operation.EMBEDDINGS, Operation.IMAGE_EMBEDDINGS})
    error_flavour = Flavour.AZURE_INFERENCE
    gen_ai_name = "azure.ai.inference"

    def urls(self, config: BackendConfig) -> dict[Operation, str]:
        base, version = self.base(config), config.api_version or API_VERSION
        return {op: f"{base}/models/{op}?api-version={version}" for op in self.operations}

    def key_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key}
