"""SIGHUP reloads the config file: a good one is swapped in whole, a bad one is
refused and the previous config keeps serving."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from policies.auth import hash_key
from tests.conftest import GATEWAY, free_port, wait_up
from tests.integration.test_cli import get


def config(port: int, sim: str, aliases: list[str]) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "consumers": [{"name": "c", "api_keys": [hash_key("k")], "deployments": ["*"]}],
        "deployments": [{"name": a, "model": a, "backends": [{"url": sim, "api": "openai"}]}
                        for a in aliases],
    }


def models(url: str) -> list[str]:
    status, body = get(url + "/v1/models", {"api-key": "k"})
    assert status == 200
    return sorted(m["id"] for m in body["data"])


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_and_a_bad_file_keeps_the_old_config(
    tmp_path: Path, background: list[subprocess.Popen[str]], workers: int
) -> None:
    port = free_port()
    path = tmp_path / "gw.yaml"
    path.write_text(json.dumps(config(port, "http://127.0.0.1:9/v1", ["a"])))
    log = (tmp_path / "gw.log").open("w")
    gw = subprocess.Popen([*GATEWAY, "serve", "--config", str(path), "--workers", str(workers)],
                          stdout=subprocess.DEVNULL, stderr=log, text=True)
    background.append(gw)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, gw)
    time.sleep(0.5 * workers)
    assert models(url) == ["a"]

    path.write_text(json.dumps(config(port, "http://127.0.0.1:9/v1", ["a", "b"])))
    gw.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert all(models(url) == ["a", "b"] for _ in range(10))  # every worker reloaded

    path.write_text("deployments: [{name: c, model: c, backends: [{url: nope, api: openai}]}]\n")
    gw.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert all(models(url) == ["a", "b"] for _ in range(10))
    assert gw.poll() is None
    assert "reload of" in (tmp_path / "gw.log").read_text()
    assert re.search(r"refused, the previous config \(version [0-9a-f]{12}\) stays",
                     (tmp_path / "gw.log").read_text())
