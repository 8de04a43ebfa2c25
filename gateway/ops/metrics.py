"""Prometheus metrics (the names of docs/contract.md §6), exposed at /metrics with prometheus-client.

The hot path only adds to plain dicts (one event loop per process, so no locks);
prometheus-client turns them into families when /metrics is scraped. That keeps
the per-request cost at a few dict operations instead of a lock and a label
lookup per sample. Label values come from config names and route templates,
never from raw client input: an unknown alias is counted as deployment="".
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.core.flow import Flow
from policies.content import ContentStats
from policies.ratelimit import LimiterStats
from policies.ratelimit.policy import LATENCY_BOUNDS

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

Labels = tuple[str, ...]
MEDIA_UNITS = ("images", "audio_seconds", "characters")  # Usage fields, and the unit label


class Counter:
    def __init__(self, name: str, doc: str, labels: Sequence[str]) -> None:
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for labels, value in self.values.items():
            family.add_metric(list(labels), value)
        return family


class Gauge(Counter):
    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def family(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        for labels, value in self.values.items():
            family.add_metric(list(labels), value)
        return family


class Histogram:
    def __init__(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.bounds = tuple(buckets)
        # per label set: [count per bucket (+Inf last)..., sum]
        self.values: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        for labels, row in self.values.items():
            family.add_metric(list(labels), cumulative(self.bounds, row[:-1]), row[-1])
        return family


def _counter(name: str, doc: str, value: float) -> Metric:
    family = CounterMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _gauge(name: str, doc: str, value: float) -> Metric:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def cumulative(bounds: Sequence[float], counts: Sequence[float]) -> list[tuple[str, float]]:
    """Per-bucket counts (+Inf last) as Prometheus' cumulative (le, count) pairs."""
    total, out = 0.0, []
    for bound, count in zip((*map(str, bounds), "+Inf"), counts, strict=True):
        total += count
        out.append((bound, total))
    return out


class Metrics:
    def __init__(self) -> None:
        # api: the client's API; backend_api: what the backend was sent (another API when
        # the gateway translated; empty when no backend was reached).
        self.requests = Counter("gateway_requests", "Requests answered.",
                                ["deployment", "consumer", "route", "status_code", "api",
                                 "backend_api"])
        self.duration = Histogram("gateway_request_duration_seconds",
                                  "Time from request to the end of the response.",
                                  ["deployment", "route"], LATENCY)
        self.ttft = Histogram("gateway_time_to_first_token_seconds",
                              "Time to the first streamed event.", ["deployment"], LATENCY)
        self.overhead = Histogram("gateway_overhead_seconds",
                                  "Time spent in the gateway itself, upstream wait excluded.",
                                  ["route"], OVERHEAD)
        self.tokens = Counter("gateway_tokens", "Tokens reported by upstream usage.",
                              ["deployment", "consumer", "type"])
        self.cost = Counter("gateway_cost", "What requests cost, from their usage and the "
                            "deployment's pricing, in its currency.", ["deployment", "consumer"])
        self.media_units = Counter("gateway_media_units", "Media units used: images generated, "
                                   "seconds of audio transcribed or translated, characters of "
                                   "speech input.", ["deployment", "consumer", "unit"])
        self.ratelimit_rejections = Counter("gateway_ratelimit_rejections",
                                            "Requests rejected by a rate limit.",
                                            ["deployment", "consumer", "scope", "limit"])
        self.upstream_requests = Counter("gateway_upstream_requests", "Calls to upstream backends.",
                                         ["deployment", "backend", "status_code"])
        self.backend_available = Gauge("gateway_backend_available",
                                       "1 when the backend may be chosen.", ["deployment", "backend"])
        self.backend_breaker_open = Gauge(
            "gateway_backend_breaker_open", "1 when the backend's circuit breaker is open or "
            "half-open.", ["deployment", "backend"])
        self.backend_cooling_down = Gauge(
            "gateway_backend_cooling_down", "1 while the backend waits out an upstream 429.",
            ["deployment", "backend"])
        self.limits = Gauge("gateway_limit_per_minute", "A deployment's configured rate limit.",
                            ["deployment", "kind"])
        self.content_filter_actions = Counter("gateway_content_filter_actions",
                                              "Content filter hits.", ["deployment", "stage", "action"])
        self.inflight = Gauge("gateway_inflight_requests", "Requests being served.", ["deployment"])
        self.config_reloads = Counter("gateway_config_reloads", "Config reloads, by result.",
                                      ["result"])
        self.config_reloads.values = {("ok",): 0.0, ("error",): 0.0}  # both from the start
        # The running config's version, read at scrape time.
        self.config_version: Callable[[], str] = str
        self.limiter: LimiterStats | None = None  # set when rate limits are configured
        # (credential, fetches, failed) of the upstream token providers, read at scrape time.
        self.token_fetches: Callable[[], Iterable[tuple[str, int, int]]] | None = None
        self.content = ContentStats()  # filled by the content-filter policy
        # (deployment, backend, available, breaker open, cooling down) of the live config,
        # and its deployments' limits, read at scrape time.
        self.backends: Callable[[], list[tuple[str, str, bool, bool, bool]]] = list
        self.configured_limits: Callable[[], list[tuple[str, str, float]]] = list
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        for gauge in (self.backend_available, self.backend_breaker_open,
                      self.backend_cooling_down, self.limits):
            gauge.values = {}  # what the live config has, not what a reload removed
        for deployment, backend, available, open_, cooling in self.backends():
            self.backend_available.set((deployment, backend), 1.0 if available else 0.0)
            self.backend_breaker_open.set((deployment, backend), 1.0 if open_ else 0.0)
            self.backend_cooling_down.set((deployment, backend), 1.0 if cooling else 0.0)
        for deployment, kind, per_minute in self.configured_limits():
            self.limits.set((deployment, kind), per_minute)
        self.content_filter_actions.values = {k: float(v) for k, v in self.content.actions.items()}
        # Tasks alive in this process's loop: flat under steady load, or something leaks.
        yield _gauge("gateway_event_loop_tasks", "Tasks alive in the event loop.",
                     len(asyncio.all_tasks()))
        if self.content.checks:
            yield _counter("gateway_content_filter_checks", "Content-filter checks run.",
                           self.content.checks)
            yield _counter("gateway_content_filter_seconds", "Time spent in content filters.",
                           self.content.seconds)
        for metric in (self.requests, self.duration, self.ttft, self.overhead, self.tokens, self.cost,
                       self.media_units,
                       self.ratelimit_rejections, self.upstream_requests, self.backend_available,
                       self.backend_breaker_open, self.backend_cooling_down, self.limits,
                       self.content_filter_actions, self.inflight, self.config_reloads):
            yield metric.family()
        info = GaugeMetricFamily("gateway_config_info", "The running config (1), by version.",
                                 labels=["version"])
        info.add_metric([self.config_version()], 1.0)
        yield info
        if self.token_fetches is not None:
            fetches = CounterMetricFamily(
                "gateway_upstream_token_fetches", "Entra ID token requests for upstream calls.",
                labels=["credential", "result"])
            for label, total, failed in self.token_fetches():
                fetches.add_metric([label, "ok"], total - failed)
                fetches.add_metric([label, "error"], failed)
            yield fetches
        if self.limiter is not None:
            yield _counter("gateway_ratelimit_store_errors",
                           "Rate-limit store (Redis) calls that failed.", self.limiter.errors)
            latency = HistogramMetricFamily("gateway_ratelimit_store_seconds",
                                            "Rate-limit store round trips.")
            latency.add_metric([], cumulative(LATENCY_BOUNDS, self.limiter.latency_counts),
                               self.limiter.latency_sum)
            yield latency
            quota = GaugeMetricFamily("gateway_quota_used_ratio",
                                      "The share of a consumer's quota used in its period, as "
                                      "of its last request.", labels=["consumer", "scope", "quota"])
            for labels, ratio in self.limiter.quota_used.items():
                quota.add_metric(list(labels), ratio)
            yield quota

    def observe(self, ex: Flow, elapsed: float) -> None:
        self.requests.inc((ex.deployment, ex.consumer, ex.route, str(ex.status), ex.api_name,
                           ex.backend_api))
        self.duration.observe((ex.deployment, ex.route), elapsed)
        self.overhead.observe((ex.route,), max(0.0, elapsed - ex.upstream_seconds))
        if ex.ttft is not None:
            self.ttft.observe((ex.deployment,), ex.ttft)
        usage = ex.usage
        if usage is not None:
            if usage.prompt_tokens:
                self.tokens.inc((ex.deployment, ex.consumer, "prompt"), usage.prompt_tokens)
            if usage.completion_tokens:
                self.tokens.inc((ex.deployment, ex.consumer, "completion"),
                                usage.completion_tokens)
            if ex.output_type:  # a media request: its units
                for unit in MEDIA_UNITS:
                    if count := getattr(usage, unit):
                        self.media_units.inc((ex.deployment, ex.consumer, unit), count)
        if ex.cost_micros:
            self.cost.inc((ex.deployment, ex.consumer), ex.cost_micros / 1_000_000)

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


METRICS = web.AppKey("metrics", Metrics)


async def metrics_handler(request: web.Request) -> web.Response:
    """/metrics: the app's registry in Prometheus' text format."""
    return await request.app[METRICS].handle(request)
