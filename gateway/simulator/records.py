"""What the simulator keeps of each request it answered, for tests and /_sim/requests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Record:
    """One request as the simulator saw it."""

    path: str
    shape: str
    operation: str
    model: str
    api_key: str | None
    authorization: str | None
    headers: dict[str, str]
    body: dict[str, Any]
    stream: bool
    method: str = "POST"
    started: float = field(default_factory=time.monotonic)
    # complete | cancelled | fault:<kind> | rejected
    outcome: str = "open"
    ended: float | None = None
    upload_bytes: int = 0  # of a media request's body, as it arrived


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A request's headers as a record keeps them: lower-cased names, never a credential.
    (str(): aiohttp's header names are a str subclass that JSON encoders refuse as keys.)"""
    return {str(k).lower(): v for k, v in headers.items()
            if k.lower() not in ("api-key", "authorization", "x-api-key")}


@contextlib.contextmanager
def answering(record: Record) -> Iterator[None]:
    """While a request is answered: how it ended (complete, cancelled, or what a fault set)
    and when."""
    try:
        yield
        if record.outcome == "open":
            record.outcome = "complete"
    except (asyncio.CancelledError, ConnectionResetError):
        record.outcome = "cancelled"
        raise
    finally:
        record.ended = time.monotonic()
