"""Requests in flight, overall and per consumer, against their caps: a flood from
one consumer is refused (429) before it takes every slot, and a process at its
limit refuses (503) rather than queueing without end. Both say when to retry.
`admitted` builds the handler of every route that reaches an upstream on them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.core.errors import TooManyInFlight, Unavailable
from gateway.core.flow import FLOW, Flow
from gateway.runtime.live import LIVE
from gateway.runtime.snapshot import Runtime
from policies.auth import presented_credentials
from policies.retry import retry_headers

RETRY = retry_headers(1)


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


Serve = Callable[[web.Request, Flow, Runtime, list[str]], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def admitted(serve: Serve) -> Handler:
    """The handler of a route that reaches an upstream (a model call, a stored response):
    a slot of the process's, the caller authenticated, a slot of the consumer's, then
    `serve` with the runtime in force when it started and the credentials the caller
    presented (kept from the upstream). Every such route is built with this, so no path
    to an upstream skips a cap."""

    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app
        runtime = app[LIVE].runtime
        inflight = app[INFLIGHT]
        inflight.enter(runtime.config.server.max_inflight_requests)
        try:
            flow = request[FLOW]
            credentials = presented_credentials(request.headers)
            caller = await runtime.authenticator.authenticate(request.headers, credentials)
            flow.caller, flow.consumer = caller, caller.consumer
            if caller.identity:
                flow.identity = " ".join(f"{k}={v}" for k, v in caller.identity)
            inflight.enter_consumer(caller.consumer, runtime.inflight_cap(caller.consumer))
            try:
                return await serve(request, flow, runtime, credentials)
            finally:
                inflight.leave_consumer(caller.consumer)
        finally:
            inflight.leave()

    return handle
