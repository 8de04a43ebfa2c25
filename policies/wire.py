"""What a policy may know of an API's wire shape: the interface every API adapter
(`gateway/apis/`) implements.

Policies never look into a body themselves. They ask the request's adapter where
the caller's and the model's texts are, how much a request may generate, and how
a blocked answer looks to that API's clients; a new API is a new adapter and no
policy changes.

A `Slot` is a place in a body that holds one text: `container[key]` is a `str`
that a filter may read and replace. A `Text` is a slot of generated output with
the key of the output it belongs to (a choice, a content block, a tool call's
arguments), so that streamed pieces of one output are filtered together.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

Slot = tuple[Any, Any]
# Result of a content check in Azure's shape: {category: {"filtered": bool, "severity": str}}
Results = dict[str, dict[str, object]]


@dataclass(frozen=True, slots=True)
class Text:
    key: Hashable
    slot: Slot

    @property
    def value(self) -> str:
        container, key = self.slot
        value = container[key]
        return value if isinstance(value, str) else ""

    def set(self, value: str) -> None:
        container, key = self.slot
        container[key] = value


class WireApi(Protocol):
    @property
    def name(self) -> str:
        """A short name for logs and metrics: "chat.completions", "responses", "messages"."""

    @property
    def generates(self) -> bool:
        """False for embeddings: nothing is generated, nothing to reserve for output."""

    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        """Every text the caller supplies: messages, system prompts, tool descriptions
        and schemas, tool results, function-call arguments."""

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        """What the upstream counts as the prompt, for token estimates."""

    def prompt_framing(self, body: dict[str, Any]) -> int:
        """Tokens the upstream adds around the prompt (per message, for the reply)."""

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        """The caller's cap on generated tokens per output, if it gave one."""

    def outputs(self, body: dict[str, Any]) -> int:
        """How many outputs are generated (chat's `n`)."""

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        """The generated texts of a whole (non-streamed) answer."""

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        """Make the output `key` of a whole answer read as refused by a content filter,
        with none of its text left."""

    def annotate(self, body: dict[str, Any], prompt: Results, outputs: dict[Hashable, Results]) -> None:
        """Add the filter results to a whole answer where the API has a place for them."""

    def stream_delta(self, event: dict[str, Any]) -> Text | None:
        """The generated text a streamed event carries, if any."""

    def is_keepalive(self, event: dict[str, Any]) -> bool:
        """An event that carries nothing (Anthropic's `ping`): held text need not go first."""

    def stream_final(self, event: dict[str, Any]) -> list[Text]:
        """Whole texts that a closing event repeats (Responses' `*.done` events): they must
        read as what was released of the same output."""
