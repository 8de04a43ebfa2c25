"""The rate-limit store an app holds, with its statistics."""

from __future__ import annotations

from policies.ratelimit import LimiterStats, Settlements, Store


class Limiter:
    """The rate-limit store and its statistics; outlives config reloads."""

    def __init__(self, store: Store | None, backend: str) -> None:
        self.store = store
        self.backend = backend  # "redis", "memory" or "none", for logs and `check`
        self.stats = LimiterStats()
        self.settlements = Settlements()
