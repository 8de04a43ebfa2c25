"""What the gateway must know of an upstream provider, in one class per provider (one
module each: azure_openai, azure_ai_inference, openai, anthropic), registered in
`gateway.providers.PROVIDERS`, the table the config validates `backends[].provider`
against. Nothing outside these modules branches on a provider's name.

    Provider
     name            the config's `provider` value
     operations      the operations it serves natively (gateway.core.operations)
     urls            operation -> full URL, from a backend's config     (abstract)
     key_headers     how an API key is sent                              (abstract)
     defaults        request headers sent when the client sent none (anthropic-version)
     body_model      the body's `model` for an operation
     needs           the backend config fields it requires beyond the common ones
     error_flavour   the shape of its error bodies (gateway.core.flavours)
     gen_ai_name     gen_ai.provider.name on the OpenTelemetry GenAI conventions

What every provider must define is abstract: a provider that forgets one fails when
the registry is built, at import.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from gateway.core.flavours import Flavour
from gateway.core.operations import Operation

if TYPE_CHECKING:  # config imports this package to validate against it
    from gateway.config.models import BackendConfig


class Provider(abc.ABC):
    name: ClassVar[str]
    operations: ClassVar[frozenset[Operation]]
    error_flavour: ClassVar[Flavour]
    gen_ai_name: ClassVar[str]
    # Sent upstream unless the client sent its own.
    defaults: ClassVar[Mapping[str, str]] = {}
    # Backend config fields this provider requires, and what they are.
    needs: ClassVar[Mapping[str, str]] = {}

    @abc.abstractmethod
    def urls(self, config: BackendConfig) -> dict[Operation, str]:
        """Each operation this backend serves, with its full upstream URL."""

    @abc.abstractmethod
    def key_headers(self, key: str) -> dict[str, str]:
        """The headers that carry an API key (`auth: {type: api-key}`)."""

    def body_model(self, operation: Operation, model: str, config: BackendConfig) -> str:
        """The body's `model` on an upstream call: the model's name, unless the provider
        wants something else there."""
        return model

    def check(self, config: BackendConfig) -> None:
        """Raise ValueError (named in the config's error) if the backend lacks a field
        this provider needs (`needs`)."""
        for name, why in self.needs.items():
            if not getattr(config, name):
                raise ValueError(f"provider {self.name} needs `{name}` ({why})")

    @staticmethod
    def base(config: BackendConfig) -> str:
        return config.url.rstrip("/")
