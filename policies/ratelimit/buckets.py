"""The token-bucket math, shared in meaning by the in-process store (here, in
Python) and the Redis store (lua/admit.lua, lua/settle.lua).

A bucket holds `capacity` units and refills continuously at `per_second` (a quota
never refills: it holds `capacity` for its period, and its key names the period). A
request is admitted only if every bucket that applies holds its cost; then all
are charged at once, or none is. Over any interval T the charged units never
exceed capacity + per_second x T. Settlement adds the difference between the
real and the reserved cost; a bucket may go below zero (debt), which delays the
next admission, so overruns are paid back rather than forgiven.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from policies.ratelimit.limits import Bucket


class StoreError(Exception):
    """The store (Redis) could not be asked."""


@dataclass(frozen=True, slots=True)
class Verdict:
    admitted: bool
    # When not admitted: the bucket that needs the longest wait, and that wait.
    # -1 for `failed` with wait_s = inf means the cost exceeds a capacity: it never fits.
    failed: int = -1
    wait_s: float = 0.0
    # Units left in each bucket after the decision.
    remaining: tuple[float, ...] = ()


class Store(Protocol):
    # True when calls never wait on I/O: a settlement is then made in place, cheaper
    # than the task that keeps a network round trip off the response.
    in_process: bool

    async def admit(self, buckets: Sequence[Bucket], costs: Sequence[float]) -> Verdict: ...

    async def settle(self, buckets: Sequence[Bucket], deltas: Sequence[float]) -> None: ...

    async def close(self) -> None: ...


def refill(available: float, elapsed_s: float, bucket: Bucket) -> float:
    return min(bucket.capacity, available + max(0.0, elapsed_s) * bucket.per_second)


def decide(buckets: Sequence[Bucket], available: Sequence[float], costs: Sequence[float],
           epoch: float = 0.0) -> Verdict:
    """The admission decision for refilled `available` units (`epoch`: the time now, for
    how long a quota waits: until its period ends)."""
    failed, wait = -1, 0.0
    for i, (bucket, have, cost) in enumerate(zip(buckets, available, costs, strict=True)):
        if have >= cost:
            continue
        if cost > bucket.capacity:
            need = math.inf
        elif bucket.resets_at is not None:
            need = max(0.0, bucket.resets_at - epoch)
        else:
            need = (cost - have) / bucket.per_second
        if need > wait or failed < 0:
            failed, wait = i, need
    if failed >= 0:
        return Verdict(False, failed, wait, tuple(available))
    return Verdict(True, -1, 0.0, tuple(a - c for a, c in zip(available, costs, strict=True)))
