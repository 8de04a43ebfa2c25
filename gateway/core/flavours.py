"""The client flavours the inbound API speaks: they decide how an error looks."""

from __future__ import annotations

import enum


class Flavour(enum.Enum):
    OPENAI = "openai"  # /v1/..., /openai/v1/...
    AZURE_OPENAI = "azure-openai"  # /openai/deployments/{name}/...
    AZURE_INFERENCE = "azure-ai-inference"  # /models/...
    ANTHROPIC = "anthropic"  # /anthropic/v1/messages, /v1/messages


def flavour_of_path(path: str) -> Flavour:
    """For answers that come before (or without) a route: the flavour its path implies."""
    if path.startswith("/openai/deployments/"):
        return Flavour.AZURE_OPENAI
    if path.startswith("/models"):
        return Flavour.AZURE_INFERENCE
    if path.startswith(("/anthropic/", "/v1/messages")):
        return Flavour.ANTHROPIC
    return Flavour.OPENAI
