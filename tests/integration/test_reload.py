"""SIGHUP reloads the config file: a good one is swapped in whole, a bad one is
refused and the previous config keeps serving."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from policies.auth import hash_key
from tests.conftest import GATEWAY, free_port, wait_up
from tests.integration.test_cli import get
from tests.waiting import wait_for


def logged(path: Path, text: str) -> int:
    """How many lines of the log at `path` hold `text`."""
    return sum(text in line for line in path.read_text().splitlines())


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
    gw_log = tmp_path / "gw.log"
    wait_for(lambda: logged(gw_log, "listening on") == workers, what="every worker listening")
    assert models(url) == ["a"]

    path.write_text(json.dumps(config(port, "http://127.0.0.1:9/v1", ["a", "b"])))
    gw.send_signal(signal.SIGHUP)
    wait_for(lambda: logged(gw_log, "reloaded ") == workers, what="every worker reloaded")
    assert all(models(url) == ["a", "b"] for _ in range(10))

    path.write_text("deployments: [{name: c, model: c, backends: [{url: nope, api: openai}]}]\n")
    gw.send_signal(signal.SIGHUP)
    wait_for(lambda: logged(gw_log, "refused, the previous config") == workers,
             what="every worker refused the bad file")
    assert all(models(url) == ["a", "b"] for _ in range(10))
    assert gw.poll() is None
    assert re.search(r"reload of .* refused, the previous config \(version [0-9a-f]{12}\) stays",
                     gw_log.read_text())
