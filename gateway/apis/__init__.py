"""One adapter per client API (the interface: `base`; what the image and audio APIs add:
`media`); `MODEL_ROUTES` is every route that forwards to a model as JSON and is served by
the model handler, `MEDIA_ROUTES` those of images and audio, served by the media handler.

May import: core, policies."""

from gateway.apis import (
    anthropic,
    audio,
    chat,
    compact,
    completions,
    embeddings,
    image_embeddings,
    images,
    responses,
)
from gateway.apis.base import Api, ModelRoute
from gateway.apis.media import MediaApi

APIS: tuple[Api, ...] = (chat.CHAT, completions.COMPLETIONS, embeddings.EMBEDDINGS,
                         image_embeddings.IMAGE_EMBEDDINGS, responses.RESPONSES, compact.COMPACT,
                         anthropic.MESSAGES, anthropic.COUNT_TOKENS, images.GENERATIONS,
                         images.EDITS, audio.TRANSCRIPTIONS, audio.TRANSLATIONS, audio.SPEECH)
MODEL_ROUTES: tuple[ModelRoute, ...] = (
    *chat.ROUTES, *completions.ROUTES, *embeddings.ROUTES, *image_embeddings.ROUTES,
    *responses.ROUTES, *compact.ROUTES, *anthropic.ROUTES,
)
MEDIA_ROUTES: tuple[ModelRoute, ...] = (*images.ROUTES, *audio.ROUTES)

__all__ = ["APIS", "MEDIA_ROUTES", "MODEL_ROUTES", "Api", "MediaApi", "ModelRoute"]
