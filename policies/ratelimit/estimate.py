"""How many tokens to reserve before the upstream has said how many it used.

No tokenizer file can be fetched at run time here, so prompts are estimated
conservatively from their size: one token per 3 bytes of UTF-8 text (English
averages about 4 characters per token, so this over-reserves rather than
under-reserves), plus 4 tokens of framing per chat message. The estimate only
decides admission: every request is settled against the upstream's real
`usage` afterwards, so an overestimate is refunded, never billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BYTES_PER_TOKEN = 3
PER_MESSAGE = 4


@dataclass(frozen=True, slots=True)
class Reservation:
    prompt: int
    completion: int

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _text_tokens(value: Any) -> int:
    if isinstance(value, str):
        return -(-len(value.encode()) // BYTES_PER_TOKEN)
    if isinstance(value, list):
        return sum(_text_tokens(v) for v in value)
    if isinstance(value, dict):
        # content parts ({"type": "text", "text": ...}), tool calls and the like
        return sum(_text_tokens(v) for k, v in value.items() if k not in ("role", "type"))
    return 0


def prompt_tokens(operation: str, body: dict[str, Any]) -> int:
    if operation == "chat/completions":
        messages = body.get("messages") or []
        return _text_tokens(messages) + PER_MESSAGE * len(messages) + 3
    if operation == "completions":
        return _text_tokens(body.get("prompt")) + 1
    return _text_tokens(body.get("input"))


def reserve(operation: str, body: dict[str, Any], default_max_tokens: int) -> Reservation:
    prompt = prompt_tokens(operation, body)
    if operation.endswith("embeddings"):
        return Reservation(prompt, 0)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    n = body.get("n")
    choices = n if isinstance(n, int) and n > 0 else 1
    completion = limit if isinstance(limit, int) and limit > 0 else default_max_tokens
    return Reservation(prompt, completion * choices)
