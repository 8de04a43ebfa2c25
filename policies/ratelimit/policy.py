"""The rate-limit policy: rate limits and quotas, reserved at admission and settled
after the response against the real usage (and, for cost quotas, the real cost)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from policies.base import Policy, RequestContext, Usage
from policies.errors import ExceedsLimit, PolicyUnavailable, QuotaExceeded, RateLimited
from policies.ratelimit.buckets import Store, StoreError, Verdict
from policies.ratelimit.estimate import Reservation, reserve
from policies.ratelimit.limits import Bucket, LimitsConfig, buckets_for
from policies.ratelimit.quotas import (
    MICROS,
    QUOTA_FIELDS,
    UNIT_OF,
    PricingConfig,
    QuotasConfig,
    cost_micros,
    quota_buckets,
    reserved_cost_micros,
)

log = logging.getLogger("policies.ratelimit")

LATENCY_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5)


@dataclass
class LimiterStats:
    """Read by the gateway's metrics at scrape time."""

    errors: int = 0
    # Store round trips: count per latency bound (+Inf last), and their sum.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    latency_sum: float = 0.0
    # (consumer, scope, quota) -> the share of the quota used, as of its last admission:
    # scope is "all" or the deployment of a quota_by_deployment.
    quota_used: dict[tuple[str, str, str], float] = field(default_factory=dict)

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
    pricing: PricingConfig | None = None
    pricing_by_backend: Mapping[str, PricingConfig] = field(default_factory=dict)

    def price(self, backend: str) -> PricingConfig | None:
        return self.pricing_by_backend.get(backend, self.pricing)


@dataclass(frozen=True)
class ConsumerLimits:
    limits: LimitsConfig | None
    by_deployment: Mapping[str, LimitsConfig]
    quotas: QuotasConfig | None = None
    quotas_by_deployment: Mapping[str, QuotasConfig] = field(default_factory=dict)


@dataclass(slots=True)
class _Held:
    buckets: tuple[Bucket, ...]
    reservation: Reservation
    reserved_cost: int  # micros
    units: Usage | None = None  # the media units reserved


def _describe(bucket: Bucket, deployment: str, consumer: str) -> str:
    per_minute = round(bucket.per_second * 60)
    who = f"deployment {deployment}" if bucket.scope == "deployment" else (
        f"consumer {consumer} on deployment {deployment}")
    return f"the {bucket.kind} limit of {who} ({per_minute} per minute)"


def _quota_name(bucket: Bucket) -> str:
    return QUOTA_FIELDS[bucket.kind][0]


def _describe_quota(bucket: Bucket, deployment: str, consumer: str) -> str:
    amount = (f"{bucket.capacity / MICROS:g}" if bucket.kind == "quota_cost_month"
              else f"{int(bucket.capacity)}")
    where = "" if bucket.scope == "consumer" else f" on deployment {deployment}"
    return f"the {_quota_name(bucket)} quota of consumer {consumer}{where} ({amount} for {bucket.period})"


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
        zone: ZoneInfo | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settlements = settlements or Settlements()
        self.deployments = dict(deployments)
        self.consumers = dict(consumers)
        self.fail_open = on_error == "open"
        self.stats = stats or LimiterStats()
        self.zone = zone or ZoneInfo("UTC")
        self.clock = clock  # epoch seconds: quota periods follow it
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

    def quotas(self, deployment: str, consumer: str) -> tuple[Bucket, ...]:
        who = self.consumers.get(consumer)
        if who is None or (who.quotas is None and deployment not in who.quotas_by_deployment):
            return ()
        now = self.clock()
        return (quota_buckets(consumer, None, who.quotas, now, self.zone)
                + quota_buckets(consumer, deployment, who.quotas_by_deployment.get(deployment),
                                now, self.zone))

    async def on_request(self, ctx: RequestContext) -> None:
        limits = self.buckets(ctx.deployment, ctx.caller.consumer)
        quotas = self.quotas(ctx.deployment, ctx.caller.consumer)
        if not limits and not quotas:
            return
        dep = self.deployments.get(ctx.deployment)
        held = reserve(ctx.api, ctx.body, dep.default_max_tokens if dep else 1024)
        units = ctx.expected
        # The cost is reserved at the dearest price of the deployment's backends.
        prices = [p for p in ([dep.pricing, *dep.pricing_by_backend.values()] if dep else []) if p]
        reserved_cost = max((reserved_cost_micros(held.prompt, held.completion, p, units)
                             for p in prices), default=0)
        groups = [(b, [self._cost(x, held, reserved_cost, units) for x in b])
                  for b in (limits, quotas) if b]
        for buckets, costs in groups:
            for bucket, cost in zip(buckets, costs, strict=True):
                if cost > bucket.capacity:
                    raise self._never_fits(ctx, bucket, cost, held)
        started = time.perf_counter()
        try:
            # Limits and quotas live under different hash tags (a deployment's, a
            # consumer's): two calls, which the Redis store sends in one pipeline.
            verdicts = await asyncio.gather(*(self.store.admit(b, c) for b, c in groups))
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
        refused = next((i for i, v in enumerate(verdicts) if not v.admitted), None)
        if refused is not None:
            for (buckets, costs), verdict in zip(groups, verdicts, strict=True):
                if verdict.admitted:  # admitted by one group, refused by the other: give back
                    self.settlements.start(self._settle(list(buckets), [-c for c in costs]))
            buckets, _ = groups[refused]
            verdict = verdicts[refused]
            raise self._refusal(ctx, buckets, verdict)
        admitted = tuple(b for buckets, _ in groups for b in buckets)
        left = tuple(r for v in verdicts for r in v.remaining)
        if quotas:
            scope_of = {"consumer": "all", "consumer-deployment": ctx.deployment}
            for bucket, remaining in zip(quotas, verdicts[-1].remaining, strict=True):
                self.stats.quota_used[(ctx.caller.consumer, scope_of[bucket.scope],
                                       _quota_name(bucket))] = 1.0 - remaining / bucket.capacity
        ctx.state[self.name] = _Held(admitted, held, reserved_cost, units)
        self._headers(ctx, admitted, left)

    @staticmethod
    def _cost(bucket: Bucket, held: Reservation, cost: int, units: Usage | None) -> float:
        if bucket.kind in ("requests", "quota_requests_day"):
            return 1.0
        if bucket.kind == "quota_cost_month":
            return float(cost)
        unit = UNIT_OF.get(bucket.kind)
        if unit is not None:  # a media quota: what the request expects of its unit, if any
            return float(getattr(units, unit)) if units is not None else 0.0
        return float(held.total)

    def _never_fits(self, ctx: RequestContext, bucket: Bucket, cost: float,
                    held: Reservation) -> ExceedsLimit:
        what = (_describe_quota(bucket, ctx.deployment, ctx.caller.consumer) if bucket.quota
                else _describe(bucket, ctx.deployment, ctx.caller.consumer))
        unit = UNIT_OF.get(bucket.kind)
        if unit is not None:
            return ExceedsLimit(
                f"This request expects {int(cost)} {unit.replace('_', ' ')} but {what} holds at "
                f"most {int(bucket.capacity)}: it can never be admitted.")
        return ExceedsLimit(
            f"This request reserves {int(cost)} ({held.prompt} tokens estimated for the prompt + "
            f"{held.completion} for the completion) but {what} holds at most "
            f"{int(bucket.capacity)}: it can never be admitted. Lower max_tokens or shorten the "
            "prompt.")

    def _refusal(self, ctx: RequestContext, buckets: tuple[Bucket, ...],
                 verdict: Verdict) -> RateLimited:
        bucket = buckets[verdict.failed]
        wait = max(0.001, verdict.wait_s)
        if bucket.quota:
            assert bucket.resets_at is not None
            resets = datetime.datetime.fromtimestamp(bucket.resets_at, self.zone).isoformat()
            return QuotaExceeded(
                f"Quota exceeded: this request would pass "
                f"{_describe_quota(bucket, ctx.deployment, ctx.caller.consumer)}. It resets at "
                f"{resets}.", retry_after_s=max(0.001, bucket.resets_at - self.clock()),
                scope="quota", limit=_quota_name(bucket))
        requests_left, tokens_left = self._remaining(buckets, verdict.remaining)
        return RateLimited(
            f"Rate limit exceeded: this request would pass "
            f"{_describe(bucket, ctx.deployment, ctx.caller.consumer)}. "
            f"Please retry after {max(1, math.ceil(wait))} seconds.",
            retry_after_s=wait,
            remaining_requests=requests_left or 0, remaining_tokens=tokens_left or 0,
            scope=bucket.scope, limit=bucket.kind,
        )

    def _headers(self, ctx: RequestContext, buckets: tuple[Bucket, ...],
                 left: tuple[float, ...]) -> None:
        requests_left, tokens_left = self._remaining(buckets, left)
        if requests_left is not None:
            ctx.response_headers["x-ratelimit-remaining-requests"] = str(requests_left)
        if tokens_left is not None:
            ctx.response_headers["x-ratelimit-remaining-tokens"] = str(tokens_left)
        quota_tokens = [v for b, v in zip(buckets, left, strict=True)
                        if b.kind in ("quota_tokens_day", "quota_tokens_month")]
        if quota_tokens:
            ctx.response_headers["x-quota-remaining-tokens"] = str(max(0, math.floor(min(quota_tokens))))
        quota_cost = [v for b, v in zip(buckets, left, strict=True) if b.kind == "quota_cost_month"]
        if quota_cost:
            ctx.response_headers["x-quota-remaining-cost"] = f"{max(0.0, min(quota_cost)) / MICROS:.6f}"

    @staticmethod
    def _remaining(
        buckets: tuple[Bucket, ...], left: tuple[float, ...]
    ) -> tuple[int | None, int | None]:
        """The tightest applicable rate limit of each kind (None: no limit of that kind)."""
        out: list[int | None] = []
        for kind in ("requests", "tokens"):
            values = [v for b, v in zip(buckets, left, strict=True) if b.kind == kind]
            out.append(max(0, math.floor(min(values))) if values else None)
        return out[0], out[1]

    async def on_response(self, ctx: RequestContext) -> None:
        held: _Held | None = ctx.state.get(self.name)
        if held is None or ctx.pending:
            return
        # The gateway fills in a counted usage when the upstream reported none (a stream
        # without usage, or one the client left); no usage at all means an error answer
        # that generated nothing.
        usage = ctx.usage
        used = usage.total if usage is not None else 0
        dep = self.deployments.get(ctx.deployment)
        cost = cost_micros(usage, dep.price(ctx.backend)) if usage is not None and dep else 0
        settle: list[Bucket] = []
        deltas: list[float] = []
        for bucket in held.buckets:
            if bucket.kind in ("requests", "quota_requests_day"):
                continue
            unit = UNIT_OF.get(bucket.kind)
            if unit is not None:
                delta = float((getattr(usage, unit) if usage is not None else 0)
                              - (getattr(held.units, unit) if held.units is not None else 0))
            elif bucket.kind == "quota_cost_month":
                delta = float(cost - held.reserved_cost)
            else:
                delta = float(used - held.reservation.total)
            if delta:
                settle.append(bucket)
                deltas.append(delta)
        if not settle:
            return
        if self.store.in_process:
            # Never suspends: settled in place, even for a cancelled request.
            await self._settle_each(settle, deltas)
        else:
            # Its own task: the response is not held for a round trip, and a cancelled
            # request (the client left) still settles.
            self.settlements.start(self._settle_each(settle, deltas))

    async def _settle_each(self, buckets: list[Bucket], deltas: list[float]) -> None:
        # Limits and quotas: one call per hash tag (see on_request).
        limits = [(b, d) for b, d in zip(buckets, deltas, strict=True) if not b.quota]
        quotas = [(b, d) for b, d in zip(buckets, deltas, strict=True) if b.quota]
        await asyncio.gather(*(self._settle([b for b, _ in g], [d for _, d in g])
                               for g in (limits, quotas) if g))

    async def _settle(self, buckets: list[Bucket], deltas: list[float]) -> None:
        try:
            await self.store.settle(buckets, deltas)
        except StoreError as exc:
            self.stats.errors += 1
            log.warning("settlement of %s lost: %s", ", ".join(f"{d:+g}" for d in deltas), exc)
