"""Requests in flight, overall and per consumer, against their caps: a flood from
one consumer is refused (429) before it takes every slot, and a process at its
limit refuses (503) rather than queueing without end. Both say when to retry."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from gateway.core.errors import TooManyInFlight, Unavailable

RETRY = {"Retry-After": "1", "retry-after-ms": "1000"}


class InFlight:
    def __init__(self) -> None:
        self.total = 0
        # A plain dict: Counter's missing-key and del paths are Python code, per request.
        self.by_consumer: dict[str, int] = {}
        self.refused: Counter[str] = Counter()  # "total" | "consumer", for /metrics

    def enter(self, cap: int) -> None:
        if cap and self.total >= cap:
            self.refused["total"] += 1
            raise Unavailable(
                f"The gateway is serving as many requests as it accepts ({cap}); retry shortly.",
                headers=RETRY)
        self.total += 1

    def leave(self) -> None:
        self.total -= 1

    def enter_consumer(self, consumer: str, cap: int) -> None:
        held = self.by_consumer.get(consumer, 0)
        if cap and held >= cap:
            self.refused["consumer"] += 1
            raise TooManyInFlight(
                f"Consumer {consumer} already has {cap} requests in flight, as many as it may; "
                "retry when one has finished.", headers=RETRY)
        self.by_consumer[consumer] = held + 1

    def leave_consumer(self, consumer: str) -> None:
        left = self.by_consumer.get(consumer, 1) - 1
        if left > 0:
            self.by_consumer[consumer] = left
        else:
            self.by_consumer.pop(consumer, None)


INFLIGHT = web.AppKey("inflight", InFlight)  # model requests being served, against their caps
