"""Whether a backend may be chosen: a cooldown the upstream asked for (429 with
retry-after), and a circuit breaker that opens after consecutive failures,
half-opens after its cooldown for a single probe, and closes on success."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class BackendHealth:
    failures_to_open: int = 5
    open_seconds: float = 30.0
    cooldown_until: float = 0.0  # monotonic; set from a 429's retry-after
    cooled_by_429: bool = False
    failures: int = 0
    open_until: float = 0.0  # 0: breaker closed
    probing: bool = False

    def available(self, now: float) -> bool:
        if now < self.cooldown_until:
            return False
        if self.open_until == 0.0:
            return True
        return now >= self.open_until and not self.probing

    def recovers_at(self) -> float:
        return max(self.cooldown_until, self.open_until)

    def picked(self, now: float) -> None:
        if self.open_until and now >= self.open_until:
            self.probing = True  # half-open: this request is the one probe

    def succeeded(self) -> None:
        self.failures, self.open_until, self.probing = 0, 0.0, False
        self.cooled_by_429 = False

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.failures_to_open:
            self.open_until = now + self.open_seconds
            self.probing = False

    def cool_down(self, seconds: float) -> None:
        """The upstream said when to come back (429): exactly that long."""
        self.cooldown_until = max(self.cooldown_until, time.monotonic() + seconds)
        self.cooled_by_429 = True
