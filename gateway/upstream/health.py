"""Whether a backend may be chosen: a cooldown the upstream asked for (429 with
retry-after), a spillover hint (its remaining quota ran low), and a circuit
breaker that opens after consecutive failures or a failure ratio over a window,
half-opens after its cooldown for a single probe, and closes on success."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class BackendHealth:
    failures_to_open: int = 5
    open_seconds: float = 30.0
    failure_ratio: float | None = None
    window_seconds: float = 30.0
    min_requests: int = 10
    cooldown_until: float = 0.0  # monotonic; set from a 429's retry-after
    cooled_by_429: bool = False
    spill_until: float = 0.0  # prefer other backends until then
    failures: int = 0
    open_until: float = 0.0  # 0: breaker closed
    probing: bool = False
    outcomes: deque[tuple[float, bool]] = field(default_factory=deque)
    # For the admin API: the last failure (what, wall-clock time) and why the breaker opened.
    last_error: str = ""
    last_error_at: float = 0.0
    opened_because: str = ""

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

    def succeeded(self, now: float) -> None:
        self.failures, self.open_until, self.probing = 0, 0.0, False
        self.cooled_by_429 = False
        self._record(now, True)

    def failed(self, now: float, what: str = "failure") -> None:
        self.failures += 1
        self.last_error, self.last_error_at = what, time.time()
        ratio_hit = self._record(now, False)
        if self.probing or self.failures >= self.failures_to_open or ratio_hit:
            self.opened_because = (
                f"the half-open probe failed ({what})" if self.probing else
                f"{self.failures} failures in a row, the last: {what}"
                if self.failures >= self.failures_to_open else
                f"failure ratio over {self.window_seconds:g} s reached, the last: {what}")
            self.open_until = now + self.open_seconds
            self.probing = False
            self.outcomes.clear()

    def _record(self, now: float, ok: bool) -> bool:
        """Keep the window's outcomes; True when the failure ratio is reached."""
        if self.failure_ratio is None:
            return False
        self.outcomes.append((now, ok))
        while self.outcomes and self.outcomes[0][0] < now - self.window_seconds:
            self.outcomes.popleft()
        if len(self.outcomes) < self.min_requests:
            return False
        bad = sum(1 for _, good in self.outcomes if not good)
        return bad / len(self.outcomes) >= self.failure_ratio

    def state(self, now: float) -> str:
        """closed, open or half-open (the breaker); cooling-down shows separately."""
        if self.open_until == 0.0:
            return "closed"
        return "open" if now < self.open_until else "half-open"

    def cool_down(self, seconds: float, what: str = "HTTP 429") -> None:
        """The upstream said when to come back (429): exactly that long."""
        self.cooldown_until = max(self.cooldown_until, time.monotonic() + seconds)
        self.cooled_by_429 = True
        self.last_error, self.last_error_at = what, time.time()

    def spill(self, seconds: float) -> None:
        self.spill_until = time.monotonic() + seconds
