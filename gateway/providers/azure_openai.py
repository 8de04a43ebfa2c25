"""Azure OpenAI (`provider: azure-openai`): deployments under a resource.

Chat, completions and embeddings at `{url}/openai/deployments/{deployment}/{op}`
with an `api-version`; the Responses API at the resource, on the v1 route
(`{url}/openai/v1/responses`, and `/openai/v1/responses/compact`), or the api-version
one when the backend names a version (which has no compact: the gateway compacts,
`gateway.translate.compact`), with the body's `model` set to the deployment's name.
Images and audio on the deployment route too (what the openai SDK's AzureOpenAI calls;
Azure serves them on the v1 route only with `api-version=preview`), at the backend's
`api_version` or, since the GA version has neither gpt-image-1, edits nor speech,
`2025-04-01-preview`. Keys go in `api-key`; Entra tokens as `Authorization: Bearer`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from gateway.providers.base import Provider

if TYPE_CHECKING:
    from gateway.config.models import BackendConfig

API_VERSION = "2024-10-21"
MEDIA_API_VERSION = "2025-04-01-preview"
MEDIA = (Operation.IMAGE_GENERATIONS, Operation.IMAGE_EDITS, Operation.TRANSCRIPTIONS,
         Operation.TRANSLATIONS, Operation.SPEECH)


class AzureOpenAI(Provider):
    name = "azure-openai"
    operations = frozenset({Operation.CHAT, Operation.COMPLETIONS, Operation.EMBEDDINGS,
                            Operation.RESPONSES, Operation.COMPACT, *MEDIA})
    error_flavour = Flavour.AZURE_OPENAI
    gen_ai_name = "azure.ai.openai"
    needs: ClassVar[Mapping[str, str]] = {"deployment": "the Azure deployment name"}

    def urls(self, config: BackendConfig) -> dict[Operation, str]:
        base = self.base(config)
        version = config.api_version or API_VERSION
        urls = {op: f"{base}/openai/deployments/{config.deployment}/{op}?api-version={version}"
                for op in (Operation.CHAT, Operation.COMPLETIONS, Operation.EMBEDDINGS)}
        media = config.api_version or MEDIA_API_VERSION
        urls |= {op: f"{base}/openai/deployments/{config.deployment}/{op}?api-version={media}"
                 for op in MEDIA}
        # Responses live at the resource, not under a deployment.
        if config.api_version:
            urls[Operation.RESPONSES] = f"{base}/openai/responses?api-version={config.api_version}"
        else:
            urls[Operation.RESPONSES] = f"{base}/openai/v1/responses"
            urls[Operation.COMPACT] = f"{base}/openai/v1/responses/compact"
        return urls

    def key_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key}

    def body_model(self, operation: Operation, model: str, config: BackendConfig) -> str:
        # The resource-level routes (Responses) find the deployment by the body's model.
        if operation in (Operation.RESPONSES, Operation.COMPACT) and config.deployment:
            return config.deployment
        return model
