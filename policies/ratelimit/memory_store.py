"""Buckets in this process: the sidecar and demo case, one replica only."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from policies.ratelimit.buckets import Verdict, decide, refill
from policies.ratelimit.limits import Bucket


class MemoryStore:
    in_process = True

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}  # key -> (available, at)

    def _available(self, bucket: Bucket, now: float) -> float:
        state = self._state.get(bucket.key)
        if state is None:
            return bucket.capacity
        available, at = state
        return refill(available, now - at, bucket)

    async def admit(self, buckets: Sequence[Bucket], costs: Sequence[float]) -> Verdict:
        now = self._clock()
        verdict = decide(buckets, [self._available(b, now) for b in buckets], costs)
        if verdict.admitted:
            for bucket, left in zip(buckets, verdict.remaining, strict=True):
                self._state[bucket.key] = (left, now)
        return verdict

    async def settle(self, buckets: Sequence[Bucket], deltas: Sequence[float]) -> None:
        now = self._clock()
        for bucket, delta in zip(buckets, deltas, strict=True):
            left = min(bucket.capacity, self._available(bucket, now) - delta)
            self._state[bucket.key] = (left, now)

    async def close(self) -> None:
        self._state.clear()
