"""The three client flavours the inbound API speaks."""

from __future__ import annotations

import enum


class Flavour(enum.Enum):
    OPENAI = "openai"  # /v1/..., /openai/v1/...
    AZURE_OPENAI = "azure-openai"  # /openai/deployments/{name}/...
    AZURE_INFERENCE = "azure-ai-inference"  # /models/...
