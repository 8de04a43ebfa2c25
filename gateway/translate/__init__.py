"""Translation between client APIs and backend APIs, one module per pair (the interface:
`base`), named in `MODULES`. A backend that speaks the client's API natively is
used as it is; otherwise the first API in `PREFERENCE` that it speaks and that a
translator joins. Completions and embeddings are not translated.

May import: core, apis, policies."""

from __future__ import annotations

import importlib
from collections.abc import Container

from gateway.core.operations import Operation
from gateway.translate.base import StreamTranslator, Target, Translator

_C, _M, _R, _X = Operation.CHAT, Operation.MESSAGES, Operation.RESPONSES, Operation.COMPACT
# Each pair's module (its TRANSLATOR, or TRANSLATORS for several): a new pair is one
# module and one entry. A module is imported when a request first needs its pair, so
# that a gateway whose backends all speak their clients' APIs loads none (1.7 MB).
MODULES: dict[tuple[Operation, Operation], str] = {
    (_C, _M): "chat_messages", (_M, _C): "messages_chat",
    (_C, _R): "chat_responses", (_M, _R): "messages_responses",
    (_R, _C): "responses_chat", (_R, _M): "responses_messages",
    (_X, _R): "compact", (_X, _C): "compact", (_X, _M): "compact",
}
_loaded: dict[tuple[Operation, Operation], Translator] = {}


def translator(client: Operation, backend: Operation) -> Translator | None:
    """The translator of a pair (its module imported on first use); None if there is none."""
    found = _loaded.get((client, backend))
    if found is None and (client, backend) in MODULES:
        module = importlib.import_module(f"gateway.translate.{MODULES[client, backend]}")
        made: tuple[Translator, ...] = getattr(module, "TRANSLATORS", None) or (module.TRANSLATOR,)
        _loaded.update({(t.client, t.backend): t for t in made})
        found = _loaded[client, backend]
    return found


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


def way(client: Operation, served: Container[Operation]) -> Operation | None:
    """What a backend serving `served` is sent for a `client` request: the client's own
    operation when native, else the first of `PREFERENCE` a pair joins; None when it
    cannot. Imports no translator (the catalog asks this of every API)."""
    if client in served:
        return client
    for backend in PREFERENCE.get(client, ()):
        if (client, backend) in MODULES and backend in served:
            return backend
    return None


def plan(client: Operation, served: Container[Operation]) -> tuple[Operation, Translator | None] | None:
    """How a backend serving `served` answers a `client` request: (the operation it is
    sent, the translator on the way or None when native); None when it cannot."""
    sent = way(client, served)
    if sent is None:
        return None
    return sent, None if sent is client else translator(client, sent)


__all__ = ["MODULES", "PREFERENCE", "StreamTranslator", "Target", "Translator", "plan", "translator", "way"]
