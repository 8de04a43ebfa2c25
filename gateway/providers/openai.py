"""OpenAI and every server that speaks its API (`provider: openai`): api.openai.com,
vLLM, Ollama, LM Studio, Azure's `/openai/v1`. `url` is the base the openai SDK takes
(`https://api.openai.com/v1`, `http://vllm:8000/v1`) and each operation is a path
under it, images and audio included. Keys go as `Authorization: Bearer`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from gateway.providers.base import Provider

if TYPE_CHECKING:
    from gateway.config.models import BackendConfig


class OpenAI(Provider):
    name = "openai"
    operations = frozenset({Operation.CHAT, Operation.COMPLETIONS, Operation.EMBEDDINGS,
                            Operation.RESPONSES, Operation.COMPACT, Operation.IMAGE_GENERATIONS,
                            Operation.IMAGE_EDITS, Operation.TRANSCRIPTIONS, Operation.TRANSLATIONS,
                            Operation.SPEECH})
    error_flavour = Flavour.OPENAI
    gen_ai_name = "openai"

    def urls(self, config: BackendConfig) -> dict[Operation, str]:
        base = self.base(config)
        return {op: f"{base}/{op}" for op in self.operations}

    def key_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}
