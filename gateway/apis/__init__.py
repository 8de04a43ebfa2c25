"""One adapter per API; `MODEL_ROUTES` is every route that forwards to a model."""

from gateway.apis import chat, completions, embeddings, image_embeddings
from gateway.apis.base import Api, ModelRoute

APIS: tuple[Api, ...] = (chat.CHAT, completions.COMPLETIONS, embeddings.EMBEDDINGS,
                         image_embeddings.IMAGE_EMBEDDINGS)
MODEL_ROUTES: tuple[ModelRoute, ...] = (
    *chat.ROUTES, *completions.ROUTES, *embeddings.ROUTES, *image_embeddings.ROUTES,
)

__all__ = ["APIS", "MODEL_ROUTES", "Api", "ModelRoute"]
