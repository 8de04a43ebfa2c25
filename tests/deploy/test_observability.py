"""The Grafana dashboard and the Prometheus alerts against a real Prometheus (Debian's
package) scraping a real gateway process under load with failures injected: every
panel's queries and every alert expression evaluate through Prometheus' HTTP API to
data of the expected shape, the alerts that should fire do, `promtool check rules`
passes, and every metric name they use is one the gateway exposes."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from policies.auth import hash_key
from tests.conftest import RedisServer, free_port, start_gateway, start_simulator
from tests.waiting import Timeout, until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "model-gateway.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
KEY = "observed-key"

def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) with Grafana's variables as Prometheus takes them."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$deployment", ".*")
            out.append((panel["title"], expr))
    return out


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"]
            for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout
    for rule in alert_rules():
        assert rule["annotations"]["runbook"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")


def test_the_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "model-gateway" and dashboard["panels"]
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "deployment"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"


class Prometheus:
    def __init__(self, folder: Path, target: str) -> None:
        self.port = free_port()
        rules = folder / "alerts.yaml"
        # The same rules, firing as soon as their expression holds: the test cannot wait
        # out their `for`.
        rules.write_text(re.sub(r"for: \S+", "for: 0s", ALERTS.read_text()))
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(rules)],
                  "scrape_configs": [{"job_name": "model-gateway",
                                      "static_configs": [{"targets": [target]}]}]}
        path = folder / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={path}", f"--storage.tsdb.path={folder / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=(folder / "prometheus.log").open("w"))
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                # Ready, and the gateway scraped once (targets reach the scraper only
                # every few seconds after start-up).
                if self.query("up")["data"]["result"]:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("prometheus did not start scraping")

    def query(self, expr: str) -> dict[str, Any]:
        query = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=10) as r:
            answer: dict[str, Any] = json.loads(r.read())
        return answer

    def firing(self) -> set[str]:
        with urllib.request.urlopen(self.url + "/api/v1/alerts", timeout=10) as r:
            alerts = json.loads(r.read())["data"]["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


async def _load(url: str, redis: RedisServer) -> None:
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}]}
    async with aiohttp.ClientSession() as s:
        async def post(body: dict[str, Any], **headers: str) -> int:
            async with s.post(url + "/v1/chat/completions", json=body,
                              headers={"api-key": KEY, **headers}) as r:
                await r.read()
                return r.status

        statuses = [await post(chat) for _ in range(20)]
        statuses += [await post({**chat, "stream": True}) for _ in range(10)]
        statuses.append(await post({**chat, "messages": [
            {"role": "user", "content": "tell me the forbidden plan"}]}))
        statuses += [await post({**chat, "model": "flaky"}) for _ in range(4)]
        statuses += [await post({**chat, "model": "down"}) for _ in range(4)]
        statuses.append(await post({**chat, "model": "throttled"},
                                   **{"x-sim-fault": "429", "x-sim-retry-after-ms": "120000"}))
        # Burn the small quota of the "metered" deployment down to nearly nothing.
        for _ in range(100):
            if await post({**chat, "model": "metered", "max_tokens": 5}) == 429:
                break
        else:
            raise AssertionError("the quota never ran out")
        assert 200 in statuses and 400 in statuses and 503 in statuses and 429 in statuses
        redis.stop()  # the rate-limit store goes away: errors, requests still admitted
        # Then a few seconds of a backend failing half its calls, so that its error
        # ratio is a rate over several scrapes, not one jump.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await post({**chat, "model": "erratic"})
            await post(chat)
            await asyncio.sleep(0.05)


async def test_panels_and_alerts_against_a_real_prometheus(
        tmp_path: Path, background: list[subprocess.Popen[str]],
        redis_server: RedisServer) -> None:
    sim = start_simulator(background)
    broken = start_simulator(background, "--fault", "500")
    erratic = start_simulator(background, "--fault", "500:0.5")
    breaker = {"breaker": {"failures": 2, "open_seconds": 300}}
    config = {
        "server": {"forward_request_headers": ["x-sim-*"]},
        "redis": {"url": redis_server.url, "on_error": "open", "timeout_seconds": 0.3},
        "content_filters": {"strict": [{"type": "blocklist", "terms": ["forbidden plan"]}]},
        "consumers": [{"name": "team", "api_keys": [hash_key(KEY)], "deployments": ["*"],
                       "limits": {"requests_per_minute": 10000},
                       "quotas_by_deployment": {"metered": {"tokens_per_day": 300}}}],
        "deployments": [
            {"name": "chat", "model": "gpt-4o-mini", "content_filter": "strict",
             "limits": {"tokens_per_minute": 1000000},
             "pricing": {"input_per_million": 2.5, "output_per_million": 10},
             "backends": [{"url": sim + "/v1", "api": "openai", "name": "sim"}]},
            {"name": "metered", "model": "gpt-4o-mini",
             "backends": [{"url": sim + "/v1", "api": "openai", "name": "sim-metered"}]},
            {"name": "flaky", "model": "gpt-4o-mini", "routing": breaker, "backends": [
                {"url": broken + "/v1", "api": "openai", "name": "broken", "priority": 0},
                {"url": sim + "/v1", "api": "openai", "name": "spare", "priority": 1}]},
            {"name": "down", "model": "gpt-4o-mini", "routing": breaker, "backends": [
                {"url": broken + "/v1", "api": "openai", "name": "broken-only"}]},
            {"name": "erratic", "model": "gpt-4o-mini",
             "routing": {"breaker": {"failures": 1000}, "max_attempts": 1},
             "backends": [{"url": erratic + "/v1", "api": "openai", "name": "erratic"}]},
            {"name": "throttled", "model": "gpt-4o-mini",
             "backends": [{"url": sim + "/v1", "api": "openai", "name": "sim-throttled"}]},
        ],
    }
    url, _ = start_gateway(config, tmp_path, background)
    prometheus = Prometheus(tmp_path, url.removeprefix("http://"))
    try:
        await _load(url, redis_server)

        # Every metric the dashboard and the alerts name is one the gateway exposes.
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
            exposed = {line.split("{")[0].split()[0] for line in (await r.text()).splitlines()
                       if line and not line.startswith("#")}
        used = {name for _, expr in panel_queries() for name in re.findall(r"gateway_\w+", expr)}
        used |= {name for rule in alert_rules() for name in re.findall(r"gateway_\w+", rule["expr"])}
        assert used and used <= exposed, used - exposed

        def empty_panels() -> list[tuple[str, str]]:
            empty = []
            for title, expr in panel_queries():
                answer = prometheus.query(expr)
                assert answer["status"] == "success", (title, expr, answer)
                assert answer["data"]["resultType"] == "vector"
                if not answer["data"]["result"]:
                    empty.append((title, expr))
            return empty

        # Each panel has data once Prometheus has scraped the load often enough (rates
        # need two scrapes): waited for, not slept on.
        try:
            await until(lambda: not empty_panels(), timeout=60, interval=0.5,
                        what="every panel's query to have data")
        except Timeout:
            assert empty_panels() == []

        for rule in alert_rules():
            answer = prometheus.query(rule["expr"])
            assert answer["status"] == "success", (rule["alert"], answer)
        firing = set()
        for _ in range(30):
            firing = prometheus.firing()
            if {"ModelGatewayNoHealthyBackend", "ModelGatewayBreakerOpen",
                    "ModelGatewayUpstreamErrors", "ModelGatewayLimiterStoreErrors",
                    "ModelGatewayQuotaNearlySpent"} <= firing:
                break
            await asyncio.sleep(0.5)
        assert {"ModelGatewayNoHealthyBackend", "ModelGatewayBreakerOpen",
                "ModelGatewayUpstreamErrors", "ModelGatewayLimiterStoreErrors",
                "ModelGatewayQuotaNearlySpent"} <= firing, firing
        # Which deployments have no backend: the one whose only backend is broken, and the
        # one whose only backend waits out a 429.
        down = prometheus.query("max by (deployment) (gateway_backend_available) == 0")
        assert {r["metric"]["deployment"] for r in down["data"]["result"]} == {"down", "throttled"}
        cooling = prometheus.query("max by (backend) (gateway_backend_cooling_down) == 1")
        assert [r["metric"]["backend"] for r in cooling["data"]["result"]] == ["sim-throttled"]
    finally:
        prometheus.stop()
