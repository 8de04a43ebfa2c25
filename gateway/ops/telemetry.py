"""OpenTelemetry traces and metrics on the GenAI semantic conventions, with the `otel`
extra (`pip install 'model-gateway[otel]'`) and the standard environment
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, ...): the
SDK reads it, the gateway names nothing of its own. Without the extra or without an
OTLP endpoint there is no `Telemetry` and the hot path tests one `None`.

Per request, a SERVER span ("chat gpt-4o", continuing an incoming `traceparent`) and
one CLIENT span per upstream attempt, children of it (failovers are siblings), whose
context goes upstream as `traceparent`. Attributes are names, numbers and codes: prompt
and completion text, keys and tokens are never recorded. Metrics:
`gen_ai.client.token.usage`, `gen_ai.client.operation.duration` (per upstream call),
`gen_ai.server.request.duration`, `gen_ai.server.time_to_first_token`, exported over
OTLP beside the Prometheus ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping, MutableMapping
from typing import Any

from aiohttp import web

from gateway.core.flow import Flow
from gateway.providers import PROVIDERS

log = logging.getLogger("gateway.ops.telemetry")

TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                   40.96, 81.92]


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Telemetry is asked for: an OTLP endpoint is named and the SDK is not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(environ.get(name) for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))


class Telemetry:
    """The tracer, the meter and their instruments, for one app."""

    def __init__(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over this default.
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME")
                                    or "model-gateway"})
        self.tracer_provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER applies
        self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[
            PeriodicExportingMetricReader(OTLPMetricExporter())])
        self.tracer = self.tracer_provider.get_tracer("model-gateway")
        meter = self.meter_provider.get_meter("model-gateway")
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Tokens used, by type (input, output).",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.operation = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="Each call to an upstream, to the end of its answer.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self.duration = meter.create_histogram(
            "gen_ai.server.request.duration", unit="s",
            description="Each request the gateway served, to the end of its answer.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self.ttft = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s",
            description="Time to the first streamed event.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self._propagator = TraceContextTextMapPropagator()
        self._server, self._client = SpanKind.SERVER, SpanKind.CLIENT
        self._error = StatusCode.ERROR
        self._in_context = set_span_in_context

    # --- the request ----------------------------------------------------------------
    def start_request(self, request: web.Request, ex: Flow) -> None:
        parent = self._propagator.extract(request.headers)
        span = self.tracer.start_span(f"{request.method} {ex.route}", context=parent,
                                      kind=self._server, attributes={
                                          "http.request.method": request.method,
                                          "http.route": ex.route})
        ex.span = span
        context = span.get_span_context()
        if context.is_valid:
            ex.trace_id, ex.span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"

    def end_request(self, ex: Flow, elapsed: float) -> None:
        span = ex.span
        if span is None:
            return
        operation = ex.operation  # each adapter's gen_ai_operation
        common: dict[str, Any] = {}
        if ex.api_name:
            common = {"gen_ai.operation.name": operation,
                      "gen_ai.provider.name": _gen_ai_name(ex.provider),
                      "gen_ai.request.model": ex.alias}
            span.update_name(f"{operation} {ex.alias}")
            if ex.response_model:
                common["gen_ai.response.model"] = ex.response_model
        attributes: dict[str, Any] = {**common, "http.response.status_code": ex.status,
                                      "gateway.consumer": ex.consumer,
                                      "gateway.deployment": ex.deployment,
                                      "gateway.backend": ex.backend, "gateway.stream": ex.stream,
                                      "gateway.api": ex.api_name,
                                      "gateway.backend_api": ex.backend_api}
        if ex.prompt_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = ex.prompt_tokens
        if ex.completion_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = ex.completion_tokens
        if ex.finish_reasons:
            attributes["gen_ai.response.finish_reasons"] = ex.finish_reasons
        if ex.output_type:  # images and audio
            attributes["gen_ai.output.type"] = ex.output_type
            if ex.usage is not None:
                for unit in ("images", "audio_seconds", "characters"):
                    if count := getattr(ex.usage, unit):
                        attributes[f"gateway.media.{unit}"] = count
        if ex.ttft is not None:
            attributes["gateway.time_to_first_token"] = ex.ttft
        if ex.ratelimit:
            attributes["gateway.ratelimit"] = ex.ratelimit
        if ex.error_code:
            attributes["error.type"] = ex.error_code
            if ex.error_code.startswith("content_filter"):
                attributes["gateway.content_filter"] = "blocked"
        span.set_attributes({k: v for k, v in attributes.items() if v not in ("", None)})
        if ex.status >= 500 or ex.error_code.startswith("upstream"):
            span.set_status(self._error, ex.error_code or str(ex.status))
        span.end()
        if not ex.api_name:
            return
        metric = {k: v for k, v in common.items() if v}
        if ex.error_code:
            metric["error.type"] = ex.error_code
        self.duration.record(elapsed, metric)
        if ex.ttft is not None:
            self.ttft.record(ex.ttft, metric)
        for kind, count in (("input", ex.prompt_tokens), ("output", ex.completion_tokens)):
            if count is not None:
                self.tokens.record(count, {**metric, "gen_ai.token.type": kind})

    # --- each upstream call ------------------------------------------------------------
    def start_call(self, ex: Flow, provider: str, backend: str, model: str, host: str,
                   port: int | None, headers: MutableMapping[str, str]) -> Any:
        """A CLIENT span for one upstream attempt; its traceparent goes into `headers`."""
        operation = ex.operation
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": _gen_ai_name(provider),
            "gen_ai.request.model": model, "server.address": host, "gateway.backend": backend}
        if port is not None:
            attributes["server.port"] = port
        parent = self._in_context(ex.span) if ex.span is not None else None
        span = self.tracer.start_span(f"{operation} {model}", context=parent, kind=self._client,
                                      attributes=attributes)
        self._propagator.inject(headers, context=self._in_context(span))
        return span

    def end_call(self, span: Any, outcome: str, seconds: float) -> None:
        attributes: dict[str, Any] = {}
        if outcome.isdigit():
            attributes["http.response.status_code"] = int(outcome)
        if not outcome.isdigit() or int(outcome) >= 400:
            attributes["error.type"] = outcome
            span.set_status(self._error, outcome)
        span.set_attributes(attributes)
        span.end()
        metric = {k: v for k, v in span.attributes.items() if k.startswith("gen_ai.")} \
            if span.attributes else {}
        if "error.type" in attributes:
            metric["error.type"] = outcome
        self.operation.record(seconds, metric)

    def close(self) -> None:
        self.tracer_provider.shutdown()  # flushes what is queued
        self.meter_provider.shutdown()


def _gen_ai_name(provider: str) -> str:
    known = PROVIDERS.get(provider)
    return known.gen_ai_name if known is not None else provider


def telemetry_ctx(key: web.AppKey[Telemetry]) -> Any:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        telemetry = None
        if wanted():
            try:
                telemetry = Telemetry()
            except ImportError:
                log.warning("OTEL_EXPORTER_OTLP_* is set but the otel extra is not installed "
                            "(pip install 'model-gateway[otel]'): no traces or OTel metrics")
        if telemetry is not None:
            app[key] = telemetry
        yield
        if telemetry is not None:
            telemetry.close()

    return ctx


TELEMETRY = web.AppKey("telemetry", Telemetry)  # set only when OpenTelemetry is on
