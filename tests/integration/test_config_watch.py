"""The config file watched as Kubernetes updates a mounted ConfigMap (the `..data`
symlink swapped to a new folder, no signal), on a real gateway process: a valid file is
swapped in while a request in flight finishes on the old one, rate-limit buckets and
backend cooldowns survive it, a broken file keeps the old config, and each outcome shows
in the metrics, the admin API and the log."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from policies.auth import hash_key
from tests.conftest import start_gateway, start_simulator
from tests.waiting import until

ADMIN = "admin-watch"
KEY = "watch-key"


class ConfigMap:
    """A folder laid out as the kubelet lays out a ConfigMap volume: config.yaml ->
    ..data/config.yaml, ..data -> ..<version>/, swapped with one rename."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir()
        self.n = 0

    @property
    def path(self) -> Path:
        return self.folder / "config.yaml"

    def publish(self, text: str) -> None:
        self.n += 1
        version = self.folder / f"..2026_12_02_{self.n:02d}"
        version.mkdir()
        (version / "config.yaml").write_text(text)
        link = self.folder / "..data_tmp"
        link.symlink_to(version.name)
        os.replace(link, self.folder / "..data")  # atomic, as the kubelet does
        if not self.path.is_symlink():
            self.path.symlink_to("..data/config.yaml")


def config(sim: str, port: int, deployments: list[str]) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port, "config_watch_seconds": 0.2,
                   "forward_request_headers": ["x-sim-*"]},
        "admin": {"api_keys": {"ops": hash_key(ADMIN)}},
        "consumers": [{"name": "team", "api_keys": [hash_key(KEY)], "deployments": ["*"],
                       # 1000 at once, one more per minute: what was spent stays spent.
                       "limits": {"requests_per_minute": 1, "burst": {"requests": 1000}}}],
        "deployments": [{"name": name, "model": name, "backends": [
            {"url": sim + "/v1", "api": "openai", "name": f"sim-{name}"}]}
            for name in deployments],
    }


async def admin(url: str, method: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url + path,
                                                       headers={"api-key": ADMIN}) as r:
        return r.status, await r.json()


async def metrics(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        return await r.text()


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.split()[-1])
    return None


async def chat(url: str, model: str, **headers: str) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.post(
            url + "/v1/chat/completions", headers={"api-key": KEY, **headers},
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]}) as r:
        await r.read()
        return r.status, dict(r.headers)


async def until_version(url: str, wanted: str | None = None, not_: str | None = None) -> str:
    async def version() -> str | None:
        _, state = await admin(url, "GET", "/admin/v1/config")
        if (wanted and state["version"] == wanted) or (not_ and state["version"] != not_):
            return str(state["version"])
        return None

    return await until(version, what="the config reloaded")


async def sim_records(sim: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(sim + "/_sim/requests") as r:
        return list((await r.json())["records"])


async def test_a_configmap_update_is_picked_up_without_a_signal(
        tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    sim = start_simulator(background)
    from tests.conftest import free_port
    port = free_port()
    volume = ConfigMap(tmp_path / "configmap")
    volume.publish(json.dumps(config(sim, port, ["chat", "cool", "old-model"])))
    url, proc = _serve(volume.path, tmp_path, background)

    _, first = await admin(url, "GET", "/admin/v1/config")
    v1 = first["version"]
    assert first["path"] == str(volume.path)
    # Spend some of the rate limit and cool a backend down before the reload.
    for _ in range(3):
        assert (await chat(url, "chat"))[0] == 200
    _, headers = await chat(url, "chat")
    left_before = int(headers["x-ratelimit-remaining-requests"])
    status, _ = await chat(url, "cool", **{"x-sim-fault": "429", "x-sim-retry-after-ms": "60000"})
    assert status == 429

    # A slow stream on the deployment the new config drops: it finishes on the old one.
    async with aiohttp.ClientSession() as s:
        stream = await s.post(url + "/v1/chat/completions", headers={
            "api-key": KEY, "x-sim-token-ms": "100", "x-sim-tokens": "40"}, json={
            "model": "old-model", "stream": True, "messages": [{"role": "user", "content": "x"}]})
        assert stream.status == 200
        volume.publish(json.dumps(config(sim, port, ["chat", "cool", "new-model"])))
        v2 = await until_version(url, not_=v1)
        # The reload came while the stream was still going (4 s of it), which then ...
        assert (await sim_records(sim))[-1]["outcome"] == "open"
        body = await stream.text()
    assert body.rstrip().endswith("data: [DONE]") and '"error"' not in body

    assert (await chat(url, "new-model"))[0] == 200
    assert (await chat(url, "old-model"))[0] == 404
    # The bucket kept what was spent; the cooldown kept its backend out.
    _, headers = await chat(url, "chat")
    assert int(headers["x-ratelimit-remaining-requests"]) == left_before - 1
    _, deployments = await admin(url, "GET", "/admin/v1/deployments")
    chat_backend = next(d for d in deployments["data"] if d["name"] == "cool")["backends"][0]
    assert chat_backend["available"] is False and chat_backend["cooling_down_until"]
    assert chat_backend["last_error"]["what"] == "HTTP 429"

    text = await metrics(url)
    assert sample(text, "gateway_config_reloads_total", result="ok") == 1
    assert sample(text, "gateway_config_info", version=v2) == 1
    assert sample(text, "gateway_config_info", version=v1) is None

    # A broken file: refused, the running config stays, and everyone can see why.
    volume.publish("deployments: [{name: broken")

    async def refused() -> bool:
        return sample(await metrics(url), "gateway_config_reloads_total", result="error") == 1

    await until(refused, what="the broken file refused")
    _, state = await admin(url, "GET", "/admin/v1/config")
    assert state["version"] == v2 and state["last_reload"]["result"] == "error"
    assert "line" in state["last_reload"]["error"]
    assert (await chat(url, "new-model"))[0] == 200

    # The same content published again reloads nothing.
    volume.publish(json.dumps(config(sim, port, ["chat", "cool", "new-model"])))
    # An absence has no event to wait for: the watcher gets a few of its 0.2 s looks.
    # (A slow machine could only make this miss a defect, never fail a sound build.)
    await asyncio.sleep(1.0)
    assert sample(await metrics(url), "gateway_config_reloads_total", result="ok") == 1
    # ... while a change of content still reloads.
    volume.publish(json.dumps(config(sim, port, ["chat", "cool", "newer-model"])))
    await until_version(url, not_=v2)
    assert sample(await metrics(url), "gateway_config_reloads_total", result="ok") == 2

    proc.terminate()
    proc.wait(20)
    log = (tmp_path / "gw.log").read_text()
    assert re.search(r"reloaded .*config.yaml \(version [0-9a-f]{12}\)", log)
    assert "reload of" in log and "refused" in log


def _serve(path: Path, folder: Path, background: list[subprocess.Popen[str]]
           ) -> tuple[str, subprocess.Popen[str]]:
    """`serve --config` on the ConfigMap's path (start_gateway writes its own file)."""
    from tests.conftest import GATEWAY, wait_up

    port = json.loads(path.read_text())["server"]["port"]
    log = (folder / "gw.log").open("a")
    proc = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)],
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    background.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return url, proc


async def test_reload_through_the_admin_api_and_the_live_state(
        tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    sim = start_simulator(background)
    failing = start_simulator(background, "--fault", "500")
    base = config(failing, 0, ["chat"])
    base["server"]["config_watch_seconds"] = 0  # only asked reloads here
    # A bucket that refills slowly (10 tokens/s), so that what two requests used still
    # shows when the state is read; each reserves at most 50 + its prompt.
    base["deployments"][0]["limits"] = {"tokens_per_minute": 600}
    base["deployments"][0]["default_max_tokens"] = 50
    base["deployments"][0]["routing"] = {"breaker": {"failures": 2, "open_seconds": 60}}
    base["deployments"][0]["backends"].append(
        {"url": sim + "/v1", "api": "openai", "name": "sim-second", "priority": 1})
    url, _ = start_gateway(base, tmp_path, background)

    for _ in range(2):  # two 500s open the first backend's breaker; the second answers
        status, _ = await chat(url, "chat")
        assert status == 200
    _, state = await admin(url, "GET", "/admin/v1/deployments")
    [chat_state] = state["data"]
    first, second = chat_state["backends"]
    assert first["name"] == "sim-chat" and first["breaker"]["state"] == "open"
    assert first["breaker"]["opened_because"] == "2 failures in a row, the last: HTTP 500"
    assert first["available"] is False and first["breaker"]["open_until"]
    assert first["last_error"]["what"] == "HTTP 500" and first["last_error"]["at"]
    assert second["available"] is True and second["breaker"]["state"] == "closed"
    [tokens] = chat_state["limits"]
    assert tokens["kind"] == "tokens" and tokens["capacity"] == 600
    assert 0 < tokens["remaining"] < 600

    status, reloaded = await admin(url, "POST", "/admin/v1/reload")
    assert status == 200 and reloaded["result"] == "ok"
    _, after = await admin(url, "GET", "/admin/v1/deployments")
    assert after["data"][0]["backends"][0]["breaker"]["state"] == "open"  # survived

    (tmp_path / "gw.yaml").write_text("server: {port: [")
    status, refused = await admin(url, "POST", "/admin/v1/reload")
    assert status == 409 and "stays" in refused["error"]["message"]

    status, shown = await admin(url, "GET", "/admin/v1/config")
    text = json.dumps(shown)
    assert hash_key(KEY) not in text and hash_key(ADMIN) not in text
    assert shown["config"]["consumers"][0]["api_keys"] == "1 key(s)"
    assert shown["config"]["admin"]["api_keys"] == ["ops"]

    async with aiohttp.ClientSession() as s, s.get(url + "/admin/v1/deployments",
                                                   headers={"api-key": KEY}) as r:
        assert r.status == 401  # a consumer's key is not an admin's


@pytest.fixture(autouse=True)
def _no_stray_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_GATEWAY_CONFIG", raising=False)
