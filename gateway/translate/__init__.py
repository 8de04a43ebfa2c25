"""Translation between client APIs and backend APIs, one module per pair (the interface:
`base`), registered in `TRANSLATORS`. A backend that speaks the client's API natively is
used as it is; otherwise the first API in `PREFERENCE` that it speaks and that a
translator joins. Completions and embeddings are not translated.

May import: core, apis, policies."""

from __future__ import annotations

from collections.abc import Container

from gateway.core.operations import Operation
from gateway.translate import (
    chat_messages,
    chat_responses,
    compact,
    messages_chat,
    messages_responses,
    responses_chat,
    responses_messages,
)
from gateway.translate.base import StreamTranslator, Target, Translator

# Each pair module's TRANSLATOR, listed here: a new pair is one module and one entry.
_PAIRS: tuple[Translator, ...] = (
    chat_messages.TRANSLATOR, messages_chat.TRANSLATOR,
    chat_responses.TRANSLATOR, messages_responses.TRANSLATOR,
    responses_chat.TRANSLATOR, responses_messages.TRANSLATOR, *compact.TRANSLATORS,
)
TRANSLATORS: dict[tuple[Operation, Operation], Translator] = {(t.client, t.backend): t for t in _PAIRS}

# For a client API, the backend APIs to translate into, best first: the closest shape
# loses least (a Chat client on a Claude model goes to Messages before Responses).
PREFERENCE: dict[Operation, tuple[Operation, ...]] = {
    Operation.CHAT: (Operation.MESSAGES, Operation.RESPONSES),
    Operation.MESSAGES: (Operation.CHAT, Operation.RESPONSES),
    Operation.RESPONSES: (Operation.CHAT, Operation.MESSAGES),
    # Compaction the backend does not serve is done by the gateway, through the
    # backend's own API (gateway.translate.compact).
    Operation.COMPACT: (Operation.RESPONSES, Operation.CHAT, Operation.MESSAGES),
}


def plan(client: Operation, served: Container[Operation]) -> tuple[Operation, Translator | None] | None:
    """How a backend serving `served` answers a `client` request: (the operation it is
    sent, the translator on the way or None when native); None when it cannot."""
    if client in served:
        return client, None
    for backend in PREFERENCE.get(client, ()):
        translator = TRANSLATORS.get((client, backend))
        if translator is not None and backend in served:
            return backend, translator
    return None


__all__ = ["PREFERENCE", "TRANSLATORS", "StreamTranslator", "Target", "Translator", "plan"]
