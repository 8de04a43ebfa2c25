"""The plain values the rest of the gateway exchanges with the database: what the usage
ledger counts (`Counts`, in the order `COUNTS` names them) and the key it counts them
under, and who owns a stored response (`Owner`). No SQLAlchemy, so that a gateway with
the database off loads none of it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, fields

# Tokens and cost, then the media units: the order of a spool entry's counts and of the
# ledger's columns (schema.FIGURES is this tuple).
COUNTS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens",
          "reasoning_tokens", "cost_micros", "images", "audio_seconds", "characters")


@dataclass(slots=True)
class Counts:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micros: int = 0
    images: int = 0
    audio_seconds: int = 0
    characters: int = 0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTS}


# consumer, deployment, hour, then the client API and the backend API (a key of three
# is read as one without APIs).
Key = tuple[str, str, datetime.datetime] | tuple[str, str, datetime.datetime, str, str]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who made a stored response, and the store (an upstream's, or the gateway's) that
    holds it: what the request path records and checks."""

    consumer: str
    deployment: str
    backend: str
    store_key: str
