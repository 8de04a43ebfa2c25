"""A rolling update drops nothing: SIGTERM makes /readyz 503 at once, in-flight
streams finish, then the process exits 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from policies.auth import hash_key
from tests.conftest import GATEWAY, free_port, wait_up
from tests.integration.test_reload import logged
from tests.waiting import wait_for


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def readyz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_in_flight_streams(
    tmp_path: Path, background: list[subprocess.Popen[str]], workers: int
) -> None:
    sim_port, port = free_port(), free_port()
    sim = subprocess.Popen([*GATEWAY, "simulate", "--port", str(sim_port), "--token-ms", "500"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    background.append(sim)
    wait_up(f"http://127.0.0.1:{sim_port}", sim)
    config = {
        "server": {"host": "127.0.0.1", "port": port, "drain_seconds": 10},
        "consumers": [{"name": "c", "api_keys": [hash_key("k")], "deployments": ["*"]}],
        "deployments": [{"name": "chat", "model": "m", "backends": [
            {"url": f"http://127.0.0.1:{sim_port}/v1", "api": "openai"}]}],
    }
    path = tmp_path / "gw.yaml"
    path.write_text(json.dumps(config))
    gw_log = tmp_path / "gw.log"
    gw = subprocess.Popen([*GATEWAY, "serve", "--config", str(path), "--workers", str(workers)],
                          stdout=subprocess.DEVNULL, stderr=gw_log.open("w"), text=True)
    background.append(gw)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, gw)
    wait_for(lambda: logged(gw_log, "listening on") == workers, what="every worker listening")

    streamed: list[bytes] = []

    def stream() -> None:  # 16 tokens x 500 ms: 7.5 s at least
        request = urllib.request.Request(
            url + "/v1/chat/completions", headers={"api-key": "k", "Content-Type": "application/json"},
            data=json.dumps({"model": "chat", "stream": True,
                             "messages": [{"role": "user", "content": "x"}]}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            streamed.append(response.read())

    clients = [threading.Thread(target=stream) for _ in range(20)]
    for client in clients:
        client.start()

    def under_way() -> bool:  # every stream has reached the upstream, none has ended
        records = get_json(f"http://127.0.0.1:{sim_port}/_sim/requests")["records"]
        return len(records) == 20 and all(r["outcome"] == "open" for r in records)

    wait_for(under_way, what="the 20 streams under way")
    gw.send_signal(signal.SIGTERM)
    # Load balancers stop sending at once: /readyz is 503 while the streams still run ...
    wait_for(lambda: readyz(url) == 503, what="/readyz 503")
    assert not streamed
    # ... and after the grace period (2 s) the port is closed, with the streams (7.5 s
    # from before the signal) still running.
    wait_for(lambda: refused(port), what="the listening port closed")
    assert not streamed  # none has finished yet
    for client in clients:
        client.join(30)
    assert len(streamed) == 20
    assert all(s.endswith(b"data: [DONE]\n\n") for s in streamed)  # finished, not cut
    assert gw.wait(15) == 0


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path,
                                                  background: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    path = tmp_path / "gw.yaml"
    path.write_text(json.dumps({"server": {"host": "127.0.0.1", "port": port},
                                "auth": {"allow_anonymous": True},
                                "deployments": [{"name": "a", "model": "a", "backends": [
                                    {"url": "http://127.0.0.1:9", "api": "openai"}]}]}))
    gw = subprocess.Popen([*GATEWAY, "serve", "--config", str(path), "--workers", "2"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    background.append(gw)
    wait_up(f"http://127.0.0.1:{port}", gw)
    children = [int(p) for p in (Path(f"/proc/{gw.pid}/task/{gw.pid}/children")
                                 .read_text().split())]
    assert len(children) == 2
    gw.kill()  # no signal is passed on
    gw.wait(5)
    wait_for(lambda: not any(Path(f"/proc/{c}").exists() for c in children),
             what="both workers gone")
