"""The one function that makes every upstream call, model requests and stored responses
alike, so that what must hold for each call holds by construction: backends tried in
the order given, within the deployment's attempts and deadline (failover only before
the first byte reaches the client); each backend's in-flight count, health, cooldown
(shared with the other replicas) and spillover; one retry after an Entra token was
refused; the upstream-call metric and the CLIENT span, once per call.

What differs between callers is in the `Call` they pass: the request made of the flow
for one backend (`prepare`), and what is done with an answer (`deliver`: the relay).

Which failures move on, and why resending is safe, is in docs/architecture.md.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

import aiohttp
from aiohttp import web
from aiohttp.payload import Payload
from yarl import URL

from gateway.config import RoutingConfig
from gateway.core.errors import UpstreamError, UpstreamTimeout
from gateway.core.flow import Flow
from gateway.ops.metrics import METRICS
from gateway.ops.telemetry import TELEMETRY
from gateway.upstream import client
from gateway.upstream.backends import Backend
from gateway.upstream.client import SESSION, HeaderPolicy
from gateway.upstream.cooldowns import COOLDOWNS
from policies.retry import retry_headers

# Upstream statuses that say the backend, not the request, is at fault: they count
# towards its circuit breaker. Other 4xx (a bad request, one too large, a refused
# prompt) are the caller's and say nothing about the backend's health; 401/403/404
# mean the backend is misconfigured for everyone, and so count.
BACKEND_FAILURES = frozenset({401, 403, 404, 408, 500, 502, 503, 504})


def is_backend_failure(status: int) -> bool:
    return status in BACKEND_FAILURES or (status >= 500 and status != 501)


def _always() -> bool:
    return True


class Request(NamedTuple):
    """One upstream request, as prepared for one backend (a tuple: one is made per call)."""

    url: str
    body: bytes | Payload | None  # a Payload: a body streamed as it is read (an upload)
    model: str = ""  # the model it names, for the trace
    method: str = "POST"
    content_type: str = "application/json"
    # Whether the body can be sent again after this attempt (an upload that streamed from
    # the client cannot): if not, this attempt's failure is the client's answer.
    resendable: Callable[[], bool] = _always


class Call(Protocol):
    """What a caller of `exchange` makes and does with the upstream's answer."""

    # A 404 is an answer about the request (a stored response that is gone), not a
    # backend misconfigured for everyone.
    missing_is_answer: bool

    def prepare(self, flow: Flow, backend: Backend) -> Request:
        """The request for this backend."""

    async def deliver(self, request: web.Request, flow: Flow, backend: Backend,
                      answer: aiohttp.ClientResponse, headers: dict[str, str]) -> web.StreamResponse:
        """Relay the answer to the client; `headers` are the retry headers the gateway
        adds (a 429's)."""


class _Failover(Exception):
    """This backend failed before anything reached the client: try the next one."""


async def exchange(request: web.Request, flow: Flow, call: Call, tries: Sequence[Backend],
                   routing: RoutingConfig, headers: HeaderPolicy,
                   credentials: list[str] | None = None) -> web.StreamResponse:
    """Try `tries` in order (at most `routing.max_attempts`, within its deadline) until one
    answers; the last one's failure is the client's error. `credentials`: what the caller
    presented, kept from the upstream whatever header carries it."""
    tries = tries[: routing.max_attempts]
    deadline = time.monotonic() + routing.deadline_seconds
    for i, backend in enumerate(tries):
        last = i == len(tries) - 1
        backend.health.picked(time.monotonic())
        backend.inflight += 1
        try:
            return await _attempt(request, flow, call, backend, routing.retry_on, last, deadline,
                                  headers, credentials)
        except _Failover:
            continue
        finally:
            backend.inflight -= 1
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _attempt(request: web.Request, flow: Flow, call: Call, backend: Backend,
                   retry_on: tuple[int, ...], last: bool, deadline: float, policy: HeaderPolicy,
                   credentials: list[str] | None) -> web.StreamResponse:
    app = request.app  # every route that calls upstreams is the gateway's own
    metrics = app[METRICS]
    labels = (flow.deployment, backend.name)
    prepared = call.prepare(flow, backend)
    flow.backend, flow.provider = backend.name, backend.provider.name
    telemetry = app.get(TELEMETRY) if flow.span is not None else None
    health = backend.health
    # A second call only when an Entra token was refused: it may have been revoked
    # before its expiry, and a fresh one is worth one more try.
    for auth_try in (1, 2):
        headers = client.forward_headers(request.headers, await backend.auth_headers(),
                                         backend.defaults, policy, credentials)
        started = time.perf_counter()
        outcome = "error"  # what this call is counted as, once, when it is over
        judged = False  # the breaker has heard about this call
        span = None
        if telemetry is not None:
            target = URL(prepared.url)
            span = telemetry.start_call(flow, backend.provider.name, backend.name, prepared.model,
                                        target.host or "", target.port, headers)
        try:
            async with client.call(app[SESSION], backend, prepared.url, headers, prepared.body,
                                   prepared.method, prepared.content_type) as answer:
                flow.upstream_seconds += time.perf_counter() - started
                status = answer.status
                outcome = str(status)
                if status == 401 and backend.token is not None:
                    backend.token.invalidate()
                    if auth_try == 1:
                        continue
                passed: dict[str, str] = {}
                if status == 429:
                    wait = retry_after(answer.headers, backend.max_cooldown)
                    wait = min(1.0, backend.max_cooldown) if wait is None else wait
                    health.cool_down(wait)
                    await app[COOLDOWNS].publish(flow.deployment, backend.name, wait)
                    passed = retry_headers(wait)
                    judged = True
                elif (is_backend_failure(status) and not (status == 404 and call.missing_is_answer)
                      ) or not _answer_status(status):
                    health.failed(time.monotonic(), f"HTTP {status}")
                    judged = True
                if status in retry_on and not _final(last, deadline) and prepared.resendable():
                    raise _Failover
                if not _answer_status(status):
                    raise UpstreamError(
                        f"The upstream {backend.name} answered HTTP {status}, which is not an "
                        "answer (redirects are not followed).")
                if not judged:
                    health.succeeded(time.monotonic())
                    backend.check_spillover(answer.headers)
                response = await call.deliver(request, flow, backend, answer, passed)
                if flow.error_code.startswith("upstream"):  # a stream that broke off
                    health.failed(time.monotonic(), "the stream broke off")
                    outcome = "stream_error"
                return response
        except (UpstreamError, UpstreamTimeout) as exc:
            if outcome in ("error", "200"):  # no answer, or a 200 whose body failed
                outcome = "timeout" if isinstance(exc, UpstreamTimeout) else "error"
                health.failed(time.monotonic(), outcome)
            if _final(last, deadline) or not prepared.resendable():
                raise
            raise _Failover from exc
        finally:
            metrics.upstream_requests.inc((*labels, outcome))
            if span is not None:
                assert telemetry is not None
                telemetry.end_call(span, outcome, time.perf_counter() - started)
    raise AssertionError("unreachable: the second auth try returns or raises")


def _final(last: bool, deadline: float) -> bool:
    """No other backend is tried after this one: it is the last, or the deadline passed
    while it was tried (decided when it failed, so that no try starts after the deadline)."""
    return last or time.monotonic() >= deadline


def _answer_status(status: int) -> bool:
    """200, or an error the client may be shown: anything else is not an answer."""
    return status == 200 or 400 <= status <= 599


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?")


def _duration(value: str) -> float | None:
    """OpenAI's reset times: "6s", "1m30s", "20ms", "2.5s"."""
    match = _DURATION.fullmatch(value.strip())
    if match is None or not any(match.groups()):
        return None
    h, m, sec, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + sec + ms / 1000


def retry_after(headers: Mapping[str, str], ceiling: float) -> float | None:
    """Seconds the upstream asked us to wait: retry-after-ms first, then retry-after, then
    the x-ratelimit-reset-* times. Upstream values are untrusted: nan, inf, negatives
    and non-ASCII digits are ignored, and the wait never exceeds `ceiling` (a huge value
    would disable a backend for good)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if not value or not value.isascii():
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, ceiling)
    resets = [d for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
              if (value := headers.get(name)) and value.isascii() and (d := _duration(value)) is not None]
    return min(max(resets), ceiling) if resets else None
