"""Prometheus collectors (DESIGN §6 names) on a per-app registry, and /metrics.

Label values come from config names and route templates, never from raw client
input: an unknown alias is counted as deployment="".
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.exchange import Exchange

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests", "Requests answered.",
            ["deployment", "consumer", "route", "status_code"], registry=r,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds", "Time from request to the end of the response.",
            ["deployment", "route"], buckets=_LATENCY, registry=r,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds", "Time to the first streamed event.",
            ["deployment"], buckets=_LATENCY, registry=r,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds", "Time spent in the gateway itself, upstream wait excluded.",
            ["route"], buckets=_OVERHEAD, registry=r,
        )
        self.tokens = Counter(
            "gateway_tokens", "Tokens reported by upstream usage.",
            ["deployment", "consumer", "type"], registry=r,
        )
        self.ratelimit_rejections = Counter(
            "gateway_ratelimit_rejections", "Requests rejected by a rate limit.",
            ["deployment", "consumer", "scope", "limit"], registry=r,
        )
        self.upstream_requests = Counter(
            "gateway_upstream_requests", "Calls to upstream backends.",
            ["deployment", "backend", "status_code"], registry=r,
        )
        self.backend_available = Gauge(
            "gateway_backend_available", "1 when the backend may be chosen.",
            ["deployment", "backend"], registry=r,
        )
        self.content_filter_actions = Counter(
            "gateway_content_filter_actions", "Content filter hits.",
            ["deployment", "stage", "action"], registry=r,
        )
        self.inflight = Gauge(
            "gateway_inflight_requests", "Requests being served.", ["deployment"], registry=r,
        )

    def observe(self, ex: Exchange, elapsed: float) -> None:
        status = str(ex.status)
        self.requests.labels(ex.deployment, ex.consumer, ex.route, status).inc()
        self.duration.labels(ex.deployment, ex.route).observe(elapsed)
        self.overhead.labels(ex.route).observe(max(0.0, elapsed - ex.upstream_seconds))
        if ex.ttft is not None:
            self.ttft.labels(ex.deployment).observe(ex.ttft)
        if ex.prompt_tokens:
            self.tokens.labels(ex.deployment, ex.consumer, "prompt").inc(ex.prompt_tokens)
        if ex.completion_tokens:
            self.tokens.labels(ex.deployment, ex.consumer, "completion").inc(ex.completion_tokens)

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
