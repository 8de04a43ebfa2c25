"""The upstream providers, one module each (the interface: `base`), in the one table
the config validates `backends[].provider` against.

May import: core."""

from gateway.providers.anthropic import Anthropic
from gateway.providers.azure_ai_inference import AzureAIInference
from gateway.providers.azure_openai import AzureOpenAI
from gateway.providers.base import Provider
from gateway.providers.openai import OpenAI

PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    AzureOpenAI(), AzureAIInference(), OpenAI(), Anthropic())}

__all__ = ["PROVIDERS", "Provider"]
