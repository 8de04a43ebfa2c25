"""Stored responses across gateway replicas and restarts: two gateway processes on
one database and one upstream; a response created through one is followed up,
retrieved and deleted through the other, also after the first was restarted, and
never by another consumer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from policies.auth import hash_key
from tests.conftest import GATEWAY, free_port, wait_up


def config(port: int, sim: str, database: str) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "database": {"url": database},
        "consumers": [{"name": "a", "api_keys": [hash_key("key-a")], "deployments": ["*"]},
                      {"name": "b", "api_keys": [hash_key("key-b")], "deployments": ["*"]}],
        "deployments": [{"name": "gpt-5-mini", "model": "gpt-5-mini", "backends": [
            {"url": sim, "api": "azure-openai", "deployment": "gpt5"}]}],
    }


def test_follow_ups_reach_the_store_through_any_replica_and_restart(
        tmp_path: Path, background: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch,
        database: str) -> None:
    # Both replicas read the database from their file: the test's default would override it.
    monkeypatch.delenv("MODEL_GATEWAY_DATABASE__URL")
    sim_port = free_port()
    sim = subprocess.Popen([*GATEWAY, "simulate", "--port", str(sim_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    background.append(sim)
    wait_up(f"http://127.0.0.1:{sim_port}", sim)

    def replica(name: str) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(config(port, f"http://127.0.0.1:{sim_port}", database)))
        proc = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        background.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_up(url, proc)
        return proc, url

    first, url_a = replica("a")
    _, url_b = replica("b")

    def client(url: str, key: str = "key-a") -> OpenAI:
        return OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)

    made = client(url_a).responses.create(model="gpt-5-mini", input="Remember this")
    follow = client(url_b).responses.create(model="gpt-5-mini", input="And this",
                                            previous_response_id=made.id)
    assert follow.previous_response_id == made.id
    assert client(url_b).responses.retrieve(made.id).output_text == made.output_text

    first.terminate()
    first.wait(10)
    _, url_a = replica("a")  # restarted: it knows the response from the database alone
    assert client(url_a).responses.retrieve(follow.id).id == follow.id
    for url in (url_a, url_b):
        with pytest.raises(openai.NotFoundError):
            client(url, "key-b").responses.retrieve(made.id)
    client(url_a).responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client(url_b).responses.retrieve(made.id)
