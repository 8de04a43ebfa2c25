"""What a process leaves behind in the temporary folder once it is stopped as operators
stop it (Ctrl-C, SIGTERM): nothing. Each process here gets a temporary folder of its
own (TMPDIR), so that what it leaves, or not, can be seen."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from policies.auth import hash_key
from tests.conftest import GATEWAY, free_port, wait_up
from tests.integration.test_reload import logged
from tests.waiting import wait_for


def left_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_leaves_no_folder_when_stopped(tmp_path: Path, background: list[subprocess.Popen[str]],
                                            sig: signal.Signals) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    log = tmp_path / "demo.log"
    demo = subprocess.Popen([*GATEWAY, "demo", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=log.open("w"), text=True, env={**os.environ, "TMPDIR": str(tmp)})
    background.append(demo)
    wait_up(f"http://127.0.0.1:{port}", demo)
    assert any(p.name.startswith("model-gateway-demo-") for p in tmp.iterdir())  # its database
    demo.send_signal(sig)
    assert demo.wait(30) == 0, log.read_text()
    assert left_in(tmp) == []
    assert "Traceback" not in log.read_text()


def test_a_gateway_removes_the_empty_spool_folders_it_made(
        tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    config = {"server": {"host": "127.0.0.1", "port": port},
              "consumers": [{"name": "c", "api_keys": [hash_key("k")], "deployments": ["*"]}],
              "deployments": [{"name": "a", "model": "a", "backends": [
                  {"url": "http://127.0.0.1:9/v1", "api": "openai"}]}]}
    path = tmp_path / "gw.yaml"
    path.write_text(json.dumps(config))
    log = tmp_path / "gw.log"
    env = {**os.environ, "TMPDIR": str(tmp)}

    def serve() -> subprocess.Popen[str]:
        proc = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)], stdout=subprocess.DEVNULL,
                                stderr=log.open("a"), text=True, env=env)
        background.append(proc)
        wait_up(f"http://127.0.0.1:{port}", proc)
        return proc

    first = serve()
    spools = tmp / "model-gateway-ledger"
    [folder] = list(spools.iterdir())  # one per database
    assert [p.suffix for p in folder.iterdir()] == [".spool"]
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    assert left_in(tmp) == []  # its spool, its database's folder and the ledger folder

    # A folder another live process has its spool in is not removed from under it (its
    # lock says it is alive: a gateway would otherwise replay and remove a stopped one's).
    folder.mkdir(parents=True)
    other = folder / "ledger-other-host-1-abcd.spool"
    fd = os.open(other, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = serve()
        wait_for(lambda: logged(log, "listening on") == 2, what="the second gateway listening")
        assert len(list(folder.iterdir())) == 2
        second.send_signal(signal.SIGINT)
        assert second.wait(30) == 0
        assert left_in(tmp) == [str(p.relative_to(tmp)) for p in (spools, folder, other)]
    finally:
        os.close(fd)
