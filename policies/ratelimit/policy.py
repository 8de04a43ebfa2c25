"""The rate-limit policy: reserve at admission, settle after the response."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from policies.base import Policy, RequestContext
from policies.errors import ExceedsLimit, PolicyUnavailable, RateLimited
from policies.ratelimit.buckets import Store, StoreError
from policies.ratelimit.estimate import Reservation, reserve
from policies.ratelimit.limits import Bucket, LimitsConfig, buckets_for

log = logging.getLogger("policies.ratelimit")

LATENCY_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5)


@dataclass
class LimiterStats:
    """Read by the gateway's metrics at scrape time."""

    errors: int = 0
    # Store round trips: count per latency bound (+Inf last), and their sum.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    latency_sum: float = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(LATENCY_BOUNDS):
            if seconds <= bound:
                self.latency_counts[i] += 1
                break
        else:
            self.latency_counts[-1] += 1
        self.latency_sum += seconds


class Settlements:
    """Settlements on their way to the store. They run after the response has gone
    (a client never waits for one), are owned by whoever owns the store, so that a
    config reload does not drop them, and are drained before the store closes."""

    def __init__(self) -> None:
        self.pending: set[asyncio.Task[None]] = set()

    def start(self, settle: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(settle)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        return task

    async def drain(self, timeout_s: float) -> None:
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=timeout_s)


@dataclass(frozen=True)
class DeploymentLimits:
    limits: LimitsConfig | None
    default_max_tokens: int


@dataclass(frozen=True)
class ConsumerLimits:
    limits: LimitsConfig | None
    by_deployment: Mapping[str, LimitsConfig]


@dataclass(slots=True)
class _Held:
    buckets: tuple[Bucket, ...]
    reservation: Reservation


def _describe(bucket: Bucket, deployment: str, consumer: str) -> str:
    per_minute = round(bucket.per_second * 60)
    who = f"deployment {deployment}" if bucket.scope == "deployment" else (
        f"consumer {consumer} on deployment {deployment}")
    return f"the {bucket.kind} limit of {who} ({per_minute} per minute)"


class RateLimitPolicy(Policy):
    name = "ratelimit"

    def __init__(
        self,
        store: Store,
        deployments: Mapping[str, DeploymentLimits],
        consumers: Mapping[str, ConsumerLimits],
        on_error: Literal["open", "closed"] = "open",
        stats: LimiterStats | None = None,
        settlements: Settlements | None = None,
    ) -> None:
        self.store = store
        self.settlements = settlements or Settlements()
        self.deployments = dict(deployments)
        self.consumers = dict(consumers)
        self.fail_open = on_error == "open"
        self.stats = stats or LimiterStats()
        self._plans: dict[tuple[str, str], tuple[Bucket, ...]] = {}

    def buckets(self, deployment: str, consumer: str) -> tuple[Bucket, ...]:
        plan = self._plans.get((deployment, consumer))
        if plan is None:
            dep = self.deployments.get(deployment)
            who = self.consumers.get(consumer)
            consumer_limits = None
            if who is not None:
                consumer_limits = who.by_deployment.get(deployment, who.limits)
            plan = buckets_for(deployment, consumer, dep.limits if dep else None, consumer_limits)
            self._plans[(deployment, consumer)] = plan
        return plan

    async def on_request(self, ctx: RequestContext) -> None:
        buckets = self.buckets(ctx.deployment, ctx.caller.consumer)
        if not buckets:
            return
        dep = self.deployments.get(ctx.deployment)
        held = reserve(ctx.api, ctx.body, dep.default_max_tokens if dep else 1024)
        costs = [1.0 if b.kind == "requests" else float(held.total) for b in buckets]
        for bucket, cost in zip(buckets, costs, strict=True):
            if cost > bucket.capacity:
                raise ExceedsLimit(
                    f"This request reserves {int(cost)} tokens ({held.prompt} estimated for the "
                    f"prompt + {held.completion} for the completion) but "
                    f"{_describe(bucket, ctx.deployment, ctx.caller.consumer)} holds at most "
                    f"{int(bucket.capacity)}: it can never be admitted. Lower max_tokens or "
                    "shorten the prompt."
                )
        started = time.perf_counter()
        try:
            verdict = await self.store.admit(buckets, costs)
        except StoreError as exc:
            self.stats.errors += 1
            if self.fail_open:
                log.warning("rate limits not enforced for this request: %s", exc)
                return
            raise PolicyUnavailable(
                "Rate limits cannot be checked right now (their store is unavailable), so the "
                "request was not sent. Retry shortly."
            ) from exc
        finally:
            self.stats.observe(time.perf_counter() - started)
        requests_left, tokens_left = self._remaining(buckets, verdict.remaining)
        if not verdict.admitted:
            bucket = buckets[verdict.failed]
            wait = max(0.001, verdict.wait_s)
            raise RateLimited(
                f"Rate limit exceeded: this request would pass "
                f"{_describe(bucket, ctx.deployment, ctx.caller.consumer)}. "
                f"Please retry after {max(1, math.ceil(wait))} seconds.",
                retry_after_s=wait,
                remaining_requests=requests_left or 0, remaining_tokens=tokens_left or 0,
                scope=bucket.scope, limit=bucket.kind,
            )
        ctx.state[self.name] = _Held(buckets, held)
        if requests_left is not None:
            ctx.response_headers["x-ratelimit-remaining-requests"] = str(requests_left)
        if tokens_left is not None:
            ctx.response_headers["x-ratelimit-remaining-tokens"] = str(tokens_left)

    @staticmethod
    def _remaining(
        buckets: tuple[Bucket, ...], left: tuple[float, ...]
    ) -> tuple[int | None, int | None]:
        """The tightest applicable limit of each kind (None: no limit of that kind)."""
        out: list[int | None] = []
        for kind in ("requests", "tokens"):
            values = [v for b, v in zip(buckets, left, strict=True) if b.kind == kind]
            out.append(max(0, math.floor(min(values))) if values else None)
        return out[0], out[1]

    async def on_response(self, ctx: RequestContext) -> None:
        held: _Held | None = ctx.state.get(self.name)
        if held is None or ctx.pending:
            return
        token_buckets = [b for b in held.buckets if b.kind == "tokens"]
        if not token_buckets:
            return
        # The gateway fills in a counted usage when the upstream reported none (a stream
        # without usage, or one the client left); no usage at all means an error answer
        # that generated nothing.
        used = ctx.usage.total if ctx.usage is not None else 0
        delta = float(used - held.reservation.total)
        if delta == 0:
            return
        if self.store.in_process:
            # Never suspends: settled in place, even for a cancelled request.
            await self._settle(token_buckets, delta)
        else:
            # Its own task: the response is not held for a round trip, and a cancelled
            # request (the client left) still settles.
            self.settlements.start(self._settle(token_buckets, delta))

    async def _settle(self, buckets: list[Bucket], delta: float) -> None:
        try:
            await self.store.settle(buckets, [delta] * len(buckets))
        except StoreError as exc:
            self.stats.errors += 1
            log.warning("settlement of %+d tokens lost: %s", int(delta), exc)
