"""Anthropic's Messages API (`provider: anthropic`): api.anthropic.com, or Claude in
Microsoft Foundry (`https://{resource}.services.ai.azure.com/anthropic`), at
`{url}/v1/messages` and `{url}/v1/messages/count_tokens`. Keys go in `x-api-key`;
`anthropic-version` is sent when the client sent none (the API requires it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from gateway.providers.base import Provider

if TYPE_CHECKING:
    from gateway.config.models import BackendConfig

VERSION = "2023-06-01"


class Anthropic(Provider):
    name = "anthropic"
    operations = frozenset({Operation.MESSAGES, Operation.COUNT_TOKENS})
    error_flavour = Flavour.ANTHROPIC
    gen_ai_name = "anthropic"
    defaults: ClassVar[Mapping[str, str]] = {"anthropic-version": VERSION}

    def urls(self, config: BackendConfig) -> dict[Operation, str]:
        base = self.base(config)
        return {op: f"{base}/v1/{op}" for op in self.operations}

    def key_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}
