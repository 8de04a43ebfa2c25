"""How the simulator behaves: credentials it accepts, latency, and faults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Before the answer: 400 (the client's fault), 429 (with both retry headers), 429-retry-after (Retry-After and
# x-ratelimit-reset-* only), 429-retry-inf, 500, 503, 529, hang, reset; instead of an
# answer: string-error, text-error, error-200, not-object, redirect, 204, status-999,
# oversized, hostile-headers; in a stream: stall, no-content-type, bare-done, no-done,
# no-usage, not-object-event, endless, long-line, garbage-event.
FaultKind = Literal[
    "400", "429", "429-retry-after", "429-retry-inf", "500", "503", "529", "hang", "reset",
    "string-error", "text-error", "error-200", "not-object", "redirect", "204", "status-999",
    "oversized", "hostile-headers",
    "stall", "no-content-type", "bare-done", "no-done", "no-usage", "not-object-event", "endless",
    "long-line", "garbage-event",
]


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    # Probability that a request gets this fault ...
    rate: float = Field(1.0, ge=0, le=1)
    # ... or: every Nth request gets it (overrides rate).
    every: int | None = Field(None, ge=1)


class SimulatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Credentials accepted as `api-key` or `Authorization: Bearer`; empty accepts anything.
    accept: tuple[str, ...] = ()
    ttft_ms: float = Field(0.0, ge=0)  # before the first token (and before a JSON answer)
    token_ms: float = Field(0.0, ge=0)  # between two streamed tokens
    completion_tokens: int = Field(16, ge=1)  # reply length when max_tokens does not cut it
    embedding_dims: int = Field(8, ge=1)
    retry_after_ms: int = Field(2000, ge=1)  # what a simulated 429 asks for
    # Reported as x-ratelimit-remaining-tokens on successful answers, when set.
    remaining_tokens: int | None = None
    faults: list[Fault] = []
    seed: int = 0
    # Keep the last N request records for tests and /_sim/requests.
    keep_records: int = Field(10_000, ge=0)
    # How tokens are counted and streamed: one word per token, or as a real model does it
    # (o200k_base for GPT-4o and later, cl100k_base for GPT-3.5 and GPT-4: the reply is
    # encoded, each token streamed as one event, and usage is the true count).
    tokenizer: Literal["words", "o200k_base", "cl100k_base"] = "words"
