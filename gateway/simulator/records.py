"""What the simulator keeps of each request it answered, for tests and /_sim/requests."""

from __future__ import annotations

import time
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
