"""OpenTelemetry from a real gateway process, with the real SDK exporting over OTLP/HTTP
to a receiver of the test's own that decodes the protobuf payloads
(opentelemetry-proto): the server and client spans of the GenAI conventions, failovers
as siblings, an incoming traceparent continued and a new one sent upstream, the access
log naming the trace, the GenAI metrics, and never a prompt, a completion or a key."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gateway.ops.telemetry import TELEMETRY
from policies.auth import hash_key
from tests.conftest import (
    GATEWAY,
    KEY_A,
    Stack,
    free_port,
    start_simulator,
    wait_up,
)
from tests.waiting import until

KEY = "otel-key"
SECRET_PROMPT = "the launch code is zebra-7731"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver:
    """An OTLP/HTTP endpoint: what the SDK sends, decoded."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.metrics: dict[str, list[Any]] = {}
        self.raw = b""

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw += body
        message = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        for resource in message.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append((service, span))
        return web.Response(body=trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def metrics_(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw += body
        message = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        for resource in message.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    self.metrics.setdefault(metric.name, []).append(metric)
        return web.Response(
            body=metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString(),
            content_type="application/x-protobuf")


def attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in span.attributes:
        v = a.value
        kind = v.WhichOneof("value")
        out[a.key] = ([x.string_value for x in v.array_value.values] if kind == "array_value"
                      else getattr(v, kind))
    return out


async def test_traces_and_metrics_on_the_genai_conventions(
        receiver: tuple[Receiver, str], tmp_path: Path,
        background: list[subprocess.Popen[str]]) -> None:
    received, endpoint = receiver
    sim = start_simulator(background)
    failing = start_simulator(background, "--fault", "500")
    config = {
        "server": {"host": "127.0.0.1", "port": free_port(),
                   "forward_request_headers": ["x-sim-*"]},
        "consumers": [{"name": "team", "api_keys": [hash_key(KEY)], "deployments": ["*"]}],
        "deployments": [
            {"name": "chat", "model": "gpt-4o-mini", "backends": [
                {"url": sim + "/v1", "api": "openai", "name": "healthy"}]},
            {"name": "failover", "model": "gpt-4o-mini", "backends": [
                {"url": failing + "/v1", "api": "openai", "name": "broken", "priority": 0},
                {"url": sim + "/v1", "api": "openai", "name": "spare", "priority": 1}]},
        ],
    }
    path = tmp_path / "gw.yaml"
    path.write_text(json.dumps(config))
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "gw-test",
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300"}
    log = (tmp_path / "access.log").open("w")
    proc = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)], stdout=log,  # noqa: ASYNC220
                            stderr=subprocess.DEVNULL, text=True, env=env)
    background.append(proc)
    url = f"http://127.0.0.1:{config['server']['port']}"  # type: ignore[index]
    wait_up(url, proc)

    messages = [{"role": "user", "content": SECRET_PROMPT}]
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/chat/completions", json={"model": "chat", "messages": messages},
                          headers={"api-key": KEY,
                                   "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}) as r:
            assert r.status == 200
            answer = await r.json()
        async with s.post(url + "/v1/chat/completions", json={
                "model": "chat", "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}}, headers={"api-key": KEY}) as r:
            streamed = await r.text()
        async with s.post(url + "/v1/chat/completions", json={"model": "failover",
                                                              "messages": messages},
                          headers={"api-key": KEY}) as r:
            assert r.status == 200
        async with s.get(sim + "/_sim/requests") as r:
            upstream_seen = (await r.json())["records"]
    completion = answer["choices"][0]["message"]["content"]

    def exported() -> tuple[list[Any], list[Any]]:
        spans = [span for _, span in received.spans]
        return ([s for s in spans if s.kind == s.SPAN_KIND_SERVER
                 and attributes(s).get("http.route") == "/v1/chat/completions"],
                [s for s in spans if s.kind == s.SPAN_KIND_CLIENT])

    # Until the three requests' server spans, their four client spans and the metrics are
    # all exported: spans leave in batches, a stream's after its last byte.
    def complete() -> bool:
        servers, clients = exported()
        return len(servers) >= 3 and len(clients) >= 4 and "gen_ai.client.token.usage" in received.metrics

    await until(complete, what="the spans and metrics exported")
    servers, clients = exported()
    assert {service["service.name"] for service, _ in received.spans} == {"gw-test"}
    assert len(servers) == 3 and len(clients) == 4

    # 1. The plain call: the caller's trace continued, one client span under it.
    plain = next(s for s in servers if s.trace_id.hex() == TRACE_ID)
    assert plain.parent_span_id.hex() == PARENT_ID
    assert plain.name == "chat chat"
    a = attributes(plain)
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "chat" and a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.usage.input_tokens"] == answer["usage"]["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == answer["usage"]["completion_tokens"]
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gateway.consumer"] == "team" and a["gateway.deployment"] == "chat"
    assert a["gateway.backend"] == "healthy" and a["http.response.status_code"] == 200
    [call] = [c for c in clients if c.parent_span_id == plain.span_id]
    c = attributes(call)
    assert call.name == "chat gpt-4o-mini" and call.trace_id == plain.trace_id
    assert c["server.address"] == "127.0.0.1" and c["http.response.status_code"] == 200
    # The upstream got the client span's context, not the caller's.
    [first_upstream] = [r for r in upstream_seen if not r["stream"]][:1]
    assert first_upstream["headers"]["traceparent"] == (
        f"00-{TRACE_ID}-{call.span_id.hex()}-01")

    # 2. The stream: its time to first token and why it ended.
    stream = next(s for s in servers if attributes(s).get("gateway.stream"))
    assert attributes(stream)["gateway.time_to_first_token"] > 0
    assert attributes(stream)["gen_ai.response.finish_reasons"] == ["stop"]
    assert streamed.rstrip().endswith("[DONE]")

    # 3. The failover: two sibling attempts, the failed one marked.
    failed_over = next(s for s in servers if attributes(s)["gateway.deployment"] == "failover")
    attempts = sorted((c for c in clients if c.parent_span_id == failed_over.span_id),
                      key=lambda c: c.start_time_unix_nano)
    assert [attributes(c)["gateway.backend"] for c in attempts] == ["broken", "spare"]
    assert attributes(attempts[0])["error.type"] == "500"
    assert attempts[0].status.code == attempts[0].status.STATUS_CODE_ERROR
    assert "error.type" not in attributes(attempts[1])

    # The access log names each request's trace and server span.
    lines = [json.loads(line) for line in (tmp_path / "access.log").read_text().splitlines()]
    by_trace = {line["trace_id"]: line for line in lines}
    assert by_trace[TRACE_ID]["span_id"] == plain.span_id.hex()

    # Metrics, with the conventions' names and attributes.
    for name in ("gen_ai.client.token.usage", "gen_ai.client.operation.duration",
                 "gen_ai.server.request.duration", "gen_ai.server.time_to_first_token"):
        assert name in received.metrics, (name, list(received.metrics))
    usage = received.metrics["gen_ai.client.token.usage"][-1]
    kinds = set()
    for point in usage.histogram.data_points:
        a = {x.key: x.value.string_value for x in point.attributes}
        assert a["gen_ai.request.model"] in ("chat", "failover")
        kinds.add(a["gen_ai.token.type"])
    assert kinds == {"input", "output"}

    # Nothing secret or said: not the prompt, not the answer, not the key.
    for text in (SECRET_PROMPT, completion, KEY, hash_key(KEY)):
        assert text.encode() not in received.raw


async def test_off_without_the_environment(stack: Stack) -> None:
    assert stack.app.get(TELEMETRY) is None
    async with aiohttp.ClientSession() as s, s.post(
            stack.url + "/v1/chat/completions", headers={"api-key": KEY_A},
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]}) as r:
        assert r.status == 200
    assert "trace_id" not in stack.access_log()[-1]
