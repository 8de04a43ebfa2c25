"""The upstream operations an inbound API maps to and a provider may serve natively:
the one vocabulary between `gateway.apis` (what a client asked for) and
`gateway.providers` (what a backend speaks). Values are the URL path each operation
has on the OpenAI-style APIs."""

from __future__ import annotations

import enum


class Operation(enum.StrEnum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    IMAGE_EMBEDDINGS = "images/embeddings"
    RESPONSES = "responses"
    # POST /responses/compact: a conversation compacted into the items that replace it.
    COMPACT = "responses/compact"
    MESSAGES = "messages"
    COUNT_TOKENS = "messages/count_tokens"
    # Images and audio (OpenAI's and Azure OpenAI's media endpoints).
    IMAGE_GENERATIONS = "images/generations"
    IMAGE_EDITS = "images/edits"
    TRANSCRIPTIONS = "audio/transcriptions"
    TRANSLATIONS = "audio/translations"
    SPEECH = "audio/speech"

