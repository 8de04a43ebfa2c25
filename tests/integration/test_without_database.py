"""A gateway with `database.enabled: false` (the sidecar that only forwards): models
answer as usual; what would need the database is refused in each API's own shape, never
let through unchecked; no database file is made; and the process loads no SQLAlchemy."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
import sqlalchemy
from openai import OpenAI

from policies.auth import hash_key
from tests.conftest import GATEWAY, KEY_A, KEY_B, Stack, free_port, wait_up
from tests.integration.test_cli import GOOD, get, run, start, write
from tests.integration.test_responses_api import with_responses


def without_database(sim: str) -> dict[str, Any]:
    config = with_responses(sim)
    config["database"] = {"enabled": False}
    config["ledger"] = {"enabled": False}
    return config


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    made: Stack = make_stack(without_database)
    return made


def client(stack: Stack, key: str = KEY_B) -> OpenAI:
    return OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0)


def refused(call: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as err:
        call()
    body: dict[str, Any] = err.value.body  # type: ignore[assignment]
    assert body["code"] == "unsupported_operation", body
    assert "database.enabled is false" in body["message"]
    return body


def test_models_answer_and_no_database_file_is_made(stack: Stack, database: str) -> None:
    reply = client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    made = client(stack).responses.create(model="gpt-5-mini", input="Hello there")
    assert made.status == "completed" and made.output_text
    # The autouse fixture points database.url at this file: with the database off it
    # is never opened.
    assert not Path(database.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize("model", ["gpt-5-mini", "mistral"])  # native, and translated to chat
def test_following_a_stored_response_up_is_refused(stack: Stack, model: str) -> None:
    made = client(stack).responses.create(model=model, input="Remember the number 7.")
    assert made.output_text
    body = refused(lambda: client(stack).responses.create(
        model=model, input="Which number?", previous_response_id=made.id))
    assert body["param"] == "previous_response_id"
    body = refused(lambda: client(stack).responses.create(
        model=model, input="Later, please.", background=True))
    assert body["param"] == "background"
    for call in (lambda: client(stack).responses.retrieve(made.id),
                 lambda: client(stack).responses.delete(made.id),
                 lambda: client(stack).responses.input_items.list(made.id),
                 lambda: client(stack).responses.cancel(made.id)):
        assert refused(call)["param"] == "response_id"


@pytest.mark.parametrize("model", ["gpt-5-mini", "mistral"])
def test_compacting_a_stored_response_is_refused(stack: Stack, model: str) -> None:
    status, body = get(stack.url + "/v1/responses/compact", {"api-key": KEY_B},
                       {"model": model, "previous_response_id": "resp_0123456789"})
    assert status == 400 and body["error"]["code"] == "unsupported_operation", body
    assert body["error"]["param"] == "previous_response_id"
    # Compaction of the conversation it is given still works.
    status, body = get(stack.url + "/v1/responses/compact", {"api-key": KEY_B},
                       {"model": model, "input": [{"role": "user", "content": "Hello there"}]})
    assert status == 200, body


def test_usage_and_the_admin_api_say_there_is_no_database(stack: Stack) -> None:
    status, body = get(stack.url + "/v1/usage", {"api-key": KEY_A})
    assert status == 400 and body["error"]["code"] == "unsupported_operation"
    assert "ledger" in body["error"]["message"]
    # The credential is still checked first: a bad key learns nothing.
    status, body = get(stack.url + "/v1/usage", {"api-key": "not-a-key"})
    assert status == 401
    for path in ("/admin/v1/consumers", "/admin/v1/reload", "/ui/"):
        status, body = get(stack.url + path, {"api-key": KEY_B})
        assert status == 404 and "admin API is not enabled" in body["error"]["message"], path


# The CLI tests' config, with the database and the ledger off.
SIDECAR = GOOD.replace("consumers:\n", "database: {enabled: false}\nledger: {enabled: false}\n"
                       "consumers:\n", 1)


def mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_sidecar_process_loads_no_database_code(
        tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    # SQLAlchemy's compiled modules show in /proc/PID/maps once it is imported (so this
    # check can fail: without them it could not see SQLAlchemy at all).
    assert list(Path(sqlalchemy.__file__).parent.rglob("*.so"))
    sim_port, port = free_port(), free_port()
    sim = start(background, "simulate", "--port", str(sim_port), "--accept", "upstream-k")
    wait_up(f"http://127.0.0.1:{sim_port}", sim)
    path = write(tmp_path, SIDECAR, PORT=port, DIGEST=hash_key("team-key"),
                 SIM=f"http://127.0.0.1:{sim_port}")
    gw = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)], cwd=tmp_path,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "WEST_KEY": "upstream-k"})
    background.append(gw)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, gw)
    status, body = get(url + "/v1/chat/completions", {"api-key": "team-key"},
                       {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200 and body["choices"][0]["message"]["content"]
    maps = mapped(gw.pid)
    assert "site-packages/sqlalchemy" not in maps
    assert "site-packages/aiohttp" in maps  # the check reads the right process
    assert not list(tmp_path.glob("*.db*"))

    # The verbs that work on the database say there is none, and change nothing.
    for verb in (("db", "upgrade"), ("consumers", "list"), ("keys", "list", "team-search"),
                 ("usage", "--from", "2026-01-01", "--to", "2026-02-01")):
        done = run(*verb, "--config", str(path))
        assert done.returncode == 2, (verb, done.stderr)
        assert "this config has no database" in done.stderr, verb
    assert not list(tmp_path.glob("*.db*"))


def test_what_needs_the_database_is_refused_at_load(tmp_path: Path) -> None:
    base = SIDECAR.replace("DIGEST", hash_key("k")).replace("SIM", "https://east.example")
    path = write(tmp_path, base.replace("ledger: {enabled: false}\n", ""), PORT=0)
    done = run("check", "--config", str(path))
    assert done.returncode == 2 and "ledger.enabled needs the database" in done.stderr
    path = write(tmp_path, base + 'admin: {api_keys: {ops: "' + hash_key("admin") + '"}}\n',
                 PORT=0)
    done = run("check", "--config", str(path))
    assert done.returncode == 2 and "the admin API needs the database" in done.stderr
    path = write(tmp_path, base, PORT=0)
    done = run("check", "--config", str(path), env={"WEST_KEY": "k"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_reload_cannot_turn_the_database_on(tmp_path: Path, make_stack: Any) -> None:
    from gateway.runtime.live import LIVE
    from gateway.runtime.reload import reload

    stack: Stack = make_stack(without_database)
    turned_on = {**without_database(stack.sim_url), "database": {"enabled": True},
                 "ledger": {"enabled": True}}
    path = tmp_path / "on.yaml"
    path.write_text(json.dumps(turned_on))

    async def attempt() -> bool:
        return reload(stack.app, path)

    assert stack.run(attempt()) is False
    live = stack.app[LIVE]
    assert live.config.database.enabled is False
    assert live.last_reload is not None and live.last_reload["result"] == "error"
    assert "database.enabled changes only at a restart" in live.last_reload["error"]
