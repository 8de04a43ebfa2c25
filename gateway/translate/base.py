"""The translator interface: a client API reaching a backend that speaks another, one
module per pair (`chat_messages`: a Chat Completions client on an Anthropic Messages
backend, and so on), each a `Translator`.

    Translator
     client, backend   the two operations it joins (gateway.core.operations)
     request           the client's body in the backend's API         (abstract)
     response          the backend's whole answer in the client's API (abstract)
     stream            a StreamTranslator for one streamed answer     (abstract)
    StreamTranslator
     feed              one backend event (its name and raw data) -> the client's events
     close             the backend stream is over -> the client's closing events

What cannot be carried to the backend's API is refused (`UnsupportedParameter`, naming
the field and the deployment), never dropped; a field with no effect worth carrying is
passed over only with a reason written beside it and in docs/contract.md (§8).

A translator sees bodies, never HTTP: the relay decodes the backend's stream into
events, feeds them, and handles what comes out as it handles a native stream of the
client's API (usage, filters, framing); the gateway's errors and an upstream's error
bodies are rendered in the client's shape by the relay, for every pair alike.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.core.errors import UnsupportedParameter
from gateway.core.operations import Operation

Event = tuple[bytes | None, bytes]  # (event name or None, data), as sse.Decoder gives them


@dataclass(slots=True)
class Target:
    """What a translator knows of where the request goes and whose it is."""

    deployment: str  # the alias, for error messages
    model: str  # the model the backend is asked for
    default_max_tokens: int  # for an API that requires max_tokens (Anthropic)
    request_id: str
    # The prompt's token count in the backend's tokenizer, for a stream whose first event
    # must carry it (Anthropic's message_start) before the backend reports it.
    count_prompt: Callable[[], int] = field(default=lambda: 0)
    created: int = 0  # seconds since the epoch, for ids and `created` fields


class StreamTranslator(abc.ABC):
    """The state of one translated stream."""

    @abc.abstractmethod
    def feed(self, name: bytes | None, data: bytes) -> list[Event]:
        """One backend event in, the client's events (zero or more) out."""

    @abc.abstractmethod
    def close(self) -> list[Event]:
        """The backend's stream ended (its terminal event, [DONE] or EOF): the client's
        events still owed, its terminal one included. The client API's own end marker
        (chat's [DONE]) is the relay's to send."""


class Translator(abc.ABC):
    client: ClassVar[Operation]
    backend: ClassVar[Operation]
    # Its streams need `target.count_prompt()` (Anthropic's message_start carries the
    # input count before the backend reports any): the gateway counts the prompt first.
    counts_prompt: ClassVar[bool] = False

    @abc.abstractmethod
    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        """The client's (validated, policy-checked) body in the backend's API; the body's
        `model` is set by the caller. Raises UnsupportedParameter for what cannot map."""

    @abc.abstractmethod
    def response(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        """The backend's whole answer in the client's API."""

    @abc.abstractmethod
    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        """A translator for the stream that answers `body` (the client's request)."""


def refuse(name: str, target: Target, why: str) -> UnsupportedParameter:
    """The error for a field the backend's API cannot carry."""
    return UnsupportedParameter(
        f"'{name}' cannot be sent to deployment {target.deployment}: {why}.", param=name)
