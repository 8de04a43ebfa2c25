"""How many tokens to reserve before the upstream has said how many it used.

Reservation must be cheap (it runs on every limited request) and must not come
out low, so prompts are estimated from their size: one token per 3 bytes of UTF-8
text (English averages about 4 characters per token, so this over-reserves), plus
the framing the API's adapter names. The estimate only decides admission: every
request is settled against the upstream's real `usage` afterwards (or, when the
upstream reports none, against a tokenizer's count), so an overestimate is
refunded, never billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.wire import WireApi

BYTES_PER_TOKEN = 3


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


def prompt_tokens(api: WireApi, body: dict[str, Any]) -> int:
    return sum(_text_tokens(part) for part in api.prompt_parts(body)) + api.prompt_framing(body)


def reserve(api: WireApi, body: dict[str, Any], default_max_tokens: int) -> Reservation:
    prompt = prompt_tokens(api, body)
    if not api.generates:
        return Reservation(prompt, 0)
    limit = api.max_output_tokens(body)
    completion = limit if limit is not None and limit > 0 else default_max_tokens
    return Reservation(prompt, completion * max(1, api.outputs(body)))
