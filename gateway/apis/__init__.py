"""One adapter per client API (the interface: `base`); `MODEL_ROUTES` is every route
that forwards to a model.

May import: core, policies."""

from gateway.apis import (
    anthropic,
    chat,
    compact,
    completions,
    embeddings,
    image_embeddings,
    responses,
)
from gateway.apis.base import Api, ModelRoute

APIS: tuple[Api, ...] = (chat.CHAT, completions.COMPLETIONS, embeddings.EMBEDDINGS,
                         image_embeddings.IMAGE_EMBEDDINGS, responses.RESPONSES, compact.COMPACT,
                         anthropic.MESSAGES, anthropic.COUNT_TOKENS)
MODEL_ROUTES: tuple[ModelRoute, ...] = (
    *chat.ROUTES, *completions.ROUTES, *embeddings.ROUTES, *image_embeddings.ROUTES,
    *responses.ROUTES, *compact.ROUTES, *anthropic.ROUTES,
)

__all__ = ["APIS", "MODEL_ROUTES", "Api", "ModelRoute"]
