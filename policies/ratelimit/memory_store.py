"""Buckets in this process: the sidecar and demo case, one replica only."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from policies.ratelimit.buckets import Verdict, decide, refill
from policies.ratelimit.limits import Bucket


class MemoryStore:
    in_process = True

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 epoch: Callable[[], float] = time.time) -> None:
        self._clock, self._epoch = clock, epoch
        self._state: dict[str, tuple[float, float]] = {}  # key -> (available, at)
        self._used: dict[str, tuple[float, float]] = {}  # a quota's key -> (used, resets_at)
        self._admits = 0

    def _available(self, bucket: Bucket, now: float) -> float:
        if bucket.quota:
            return bucket.capacity - self._used.get(bucket.key, (0.0, 0.0))[0]
        state = self._state.get(bucket.key)
        if state is None:
            return bucket.capacity
        available, at = state
        return refill(available, now - at, bucket)

    def _keep(self, bucket: Bucket, available: float, now: float) -> None:
        if bucket.quota:
            assert bucket.resets_at is not None
            self._used[bucket.key] = (max(0.0, bucket.capacity - available), bucket.resets_at)
        else:
            self._state[bucket.key] = (available, now)

    async def admit(self, buckets: Sequence[Bucket], costs: Sequence[float]) -> Verdict:
        now, epoch = self._clock(), self._epoch()
        self._forget_ended(epoch)
        verdict = decide(buckets, [self._available(b, now) for b in buckets], costs, epoch)
        if verdict.admitted:
            for bucket, left in zip(buckets, verdict.remaining, strict=True):
                self._keep(bucket, left, now)
        return verdict

    async def settle(self, buckets: Sequence[Bucket], deltas: Sequence[float]) -> None:
        now = self._clock()
        for bucket, delta in zip(buckets, deltas, strict=True):
            self._keep(bucket, min(bucket.capacity, self._available(bucket, now) - delta), now)

    def _forget_ended(self, epoch: float) -> None:
        self._admits += 1
        if self._admits % 10_000 == 0:  # now and then: periods end rarely
            for key in [k for k, (_, ends) in self._used.items() if ends < epoch - 3600]:
                del self._used[key]

    async def close(self) -> None:
        self._state.clear()
        self._used.clear()
