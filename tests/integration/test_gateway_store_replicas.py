"""Responses the gateway stores itself (a chat-only deployment, whose backend stores
nothing) across gateway replicas and a restart: two gateway processes on one database
and one simulator; a response created through one, streamed or not, is continued with
previous_response_id, retrieved, listed and deleted through the other, also after the
first was restarted, and never by another consumer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from policies.auth import hash_key
from tests.conftest import GATEWAY, free_port, start_simulator, wait_up


def config(port: int, sim: str, database: str) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "database": {"url": database},
        "consumers": [{"name": "a", "api_keys": [hash_key("key-a")], "deployments": ["*"]},
                      {"name": "b", "api_keys": [hash_key("key-b")], "deployments": ["*"]}],
        "deployments": [{"name": "mistral-large", "model": "mistral-large-2411", "backends": [
            {"url": sim, "provider": "azure-ai-inference"}]}],
    }


def test_translated_follow_ups_through_any_replica_and_a_restart(
        tmp_path: Path, background: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch,
        database: str) -> None:
    # Both replicas read the database from their file: the test's default would override it.
    monkeypatch.delenv("MODEL_GATEWAY_DATABASE__URL")
    sim = start_simulator(background)

    def replica(name: str) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(config(port, sim, database)))
        proc = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        background.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_up(url, proc)
        return proc, url

    first, url_a = replica("a")
    _, url_b = replica("b")

    def client(url: str, key: str = "key-a") -> OpenAI:
        return OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)

    made = client(url_a).responses.create(model="mistral-large", input="Remember the word kiwi")
    assert made.id.startswith("resp_gw_")
    # Streamed through one replica, continued at once through the other: the stream's
    # completion is written after its last event, and the follow-up waits for it.
    with client(url_a).responses.stream(model="mistral-large", input="And the word fig",
                                        previous_response_id=made.id) as stream:
        streamed = stream.get_final_response()
    follow = client(url_b).responses.create(model="mistral-large", input="Which words?",
                                            previous_response_id=streamed.id)
    assert follow.previous_response_id == streamed.id and follow.output_text
    assert client(url_b).responses.retrieve(streamed.id).output_text == streamed.output_text

    first.terminate()
    first.wait(30)
    _, url_a = replica("a")  # restarted: it knows the responses from the database alone
    again = client(url_a).responses.create(model="mistral-large", input="Once more",
                                           previous_response_id=follow.id)
    assert again.output_text
    items = client(url_a).responses.input_items.list(follow.id)
    assert [i.content[0].text for i in items.data] == ["Which words?"]  # type: ignore[union-attr]
    for url in (url_a, url_b):
        with pytest.raises(openai.NotFoundError):
            client(url, "key-b").responses.retrieve(made.id)
        with pytest.raises(openai.NotFoundError):
            client(url, "key-b").responses.create(model="mistral-large", input="x",
                                                  previous_response_id=made.id)
    client(url_a).responses.delete(again.id)
    with pytest.raises(openai.NotFoundError):
        client(url_b).responses.retrieve(again.id)
    assert client(url_b).responses.retrieve(follow.id).id == follow.id
