"""A rolling update drops nothing: SIGTERM makes /readyz 503 at once, in-flight
streams finish, then the process exits 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from policies.auth import hash_key
from tests.conftest import GATEWAY, free_port, wait_up


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_in_flight_streams(
    tmp_path: Path, background: list[subprocess.Popen[str]], workers: int
) -> None:
    sim_port, port = free_port(), free_port()
    sim = subprocess.Popen([*GATEWAY, "simulate", "--port", str(sim_port), "--token-ms", "300"],
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
    gw = subprocess.Popen([*GATEWAY, "serve", "--config", str(path), "--workers", str(workers)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    background.append(gw)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, gw)
    time.sleep(0.5 * workers)  # every worker listening

    streamed: list[bytes] = []

    def stream() -> None:  # 16 tokens x 300 ms: about 4.5 s
        request = urllib.request.Request(
            url + "/v1/chat/completions", headers={"api-key": "k", "Content-Type": "application/json"},
            data=json.dumps({"model": "chat", "stream": True,
                             "messages": [{"role": "user", "content": "x"}]}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            streamed.append(response.read())

    clients = [threading.Thread(target=stream) for _ in range(20)]
    for client in clients:
        client.start()
    time.sleep(0.8)  # the streams are under way
    gw.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    try:
        urllib.request.urlopen(url + "/readyz", timeout=2)
        ready = 200
    except urllib.error.HTTPError as err:
        ready = err.code
    assert ready == 503  # load balancers stop sending at once
    time.sleep(2.5)  # past the grace period, with the streams still running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
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
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.2)
    assert not any(Path(f"/proc/{c}").exists() for c in children)
