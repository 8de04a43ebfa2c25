"""The command line as an operator uses it: real processes, real ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gateway.config import DatabaseConfig
from gateway.database.engine import make_engine
from gateway.database.migrate import HEAD, upgrade
from policies.auth import hash_key
from tests.conftest import GATEWAY, free_port, wait_up
from tests.waiting import wait_for


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, timeout=30,
                          input=stdin, env={**os.environ, **(env or {})})


def get(url: str, headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def start(background: list[subprocess.Popen[str]], *args: str,
          env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*GATEWAY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})
    background.append(proc)
    return proc


def test_hash_key() -> None:
    assert run("hash-key", "s3cret").stdout.strip() == hash_key("s3cret")
    assert run("hash-key", stdin="s3cret\n").stdout.strip() == hash_key("s3cret")


GOOD = """\
server: {host: 127.0.0.1, port: PORT}
consumers:
  - name: team-search
    api_keys: ["DIGEST"]
    deployments: ["gpt-4o-mini"]
deployments:
  - name: gpt-4o-mini
    model: gpt-4o-mini
    backends:
      - {url: "SIM", api: azure-openai, deployment: gpt4o-mini,
         auth: {type: api-key, key_env: WEST_KEY}}
"""


def write(tmp_path: Path, text: str, **subs: object) -> Path:
    for name, value in subs.items():
        text = text.replace(name, str(value))
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_check_prints_deployments_and_never_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, PORT=8080, DIGEST=hash_key("team-key"), SIM="https://east.example")
    result = run("check", "--config", str(path), env={"WEST_KEY": "very-secret-upstream"})
    assert result.returncode == 0, result.stderr
    assert "deployment gpt-4o-mini" in result.stdout
    assert "backend east.example/gpt4o-mini: azure-openai" in result.stdout
    assert "consumer team-search: 1 key(s)" in result.stdout
    assert "very-secret-upstream" not in result.stdout + result.stderr
    missing = run("check", "--config", str(path), env={"WEST_KEY": ""})
    assert missing.returncode == 1 and "WEST_KEY is not set" in missing.stdout
    # The Redis URL carries a password: shown with it masked.
    with_redis = run("check", "--config", str(path), env={
        "WEST_KEY": "k", "MODEL_GATEWAY_REDIS__URL": "redis://:redis-password@cache:6379/0"})
    assert "redis: redis://:***@cache:6379/0" in with_redis.stdout
    assert "redis-password" not in with_redis.stdout + with_redis.stderr


def test_check_names_line_and_key_of_each_problem(tmp_path: Path) -> None:
    bad = GOOD.replace("api: azure-openai", "api: azure-openia").replace(
        "    model: gpt-4o-mini\n", "    model: gpt-4o-mini\n    colour: blue\n")
    path = write(tmp_path, bad, PORT=8080, DIGEST=hash_key("k"), SIM="https://east.example")
    result = run("check", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}:9: deployments[0].colour: unknown key" in result.stderr
    assert f"{path}:11: deployments[0].backends[0].api: Input should be" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("check", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "cannot read config" in result.stderr


def test_serve_refuses_a_config_without_callers(tmp_path: Path) -> None:
    text = "deployments:\n  - {name: a, model: m, backends: [{url: 'http://x/v1', api: openai}]}\n"
    result = run("serve", "--config", str(write(tmp_path, text)))
    assert result.returncode == 2
    assert "allow_anonymous" in result.stderr
    public = "auth: {allow_anonymous: true}\n" + text
    result = run("serve", "--config", str(write(tmp_path, public)))
    assert result.returncode == 2 and "loopback" in result.stderr


def test_serve_with_env_override_and_workers(
    tmp_path: Path, background: list[subprocess.Popen[str]]
) -> None:
    sim_port, port = free_port(), free_port()
    sim = start(background, "simulate", "--port", str(sim_port), "--accept", "upstream-k")
    wait_up(f"http://127.0.0.1:{sim_port}", sim)
    path = write(tmp_path, GOOD, PORT=1, DIGEST=hash_key("team-key"),
                 SIM=f"http://127.0.0.1:{sim_port}")
    err_log = tmp_path / "gw.err"
    gw = subprocess.Popen([*GATEWAY, "serve", "--workers", "2"], stdout=subprocess.PIPE,
                          stderr=err_log.open("w"), text=True, env={
                              **os.environ, "MODEL_GATEWAY_CONFIG": str(path),
                              "MODEL_GATEWAY_SERVER__PORT": str(port), "WEST_KEY": "upstream-k"})
    background.append(gw)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, gw)
    # Both worker processes log that they listen on the same port.
    wait_for(lambda: err_log.read_text().count(f"listening on http://127.0.0.1:{port}") == 2,
             what="both workers listening")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    statuses = [get(url + "/v1/chat/completions", {"api-key": "team-key"}, body)[0]
                for _ in range(20)]
    assert statuses == [200] * 20
    gw.send_signal(signal.SIGTERM)
    assert gw.wait(15) == 0
    out = gw.stdout.read() if gw.stdout else ""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    lines = [line for line in lines if line["route"] == "/v1/chat/completions"]
    assert len(lines) == 20 and {line["consumer"] for line in lines} == {"team-search"}
    err = err_log.read_text()
    assert "team-key" not in out + err and "upstream-k" not in out + err


def test_demo_answers_with_the_key_it_prints(background: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    demo = start(background, "demo", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_up(url, demo)
    assert demo.stdout is not None
    banner = ""
    while "Ctrl-C stops it." not in banner:
        banner += demo.stdout.readline()
    key = banner.split("demo key: ")[1].split()[0]
    status, models = get(url + "/v1/models", {"api-key": key})
    assert status == 200
    apis = {m["id"]: m["apis"] for m in models["data"]}
    # Messages, Chat and Responses reach them through translation (gateway.translate).
    media = ["images.generations", "images.edits", "audio.transcriptions", "audio.translations",
             "audio.speech"]
    assert apis["gpt-5-mini"] == ["chat.completions", "completions", "embeddings", "responses",
                                  "responses.compact", "messages", *media]
    assert apis["claude-sonnet-4-5"] == ["chat.completions", "responses", "responses.compact",
                                         "messages", "messages.count_tokens"]
    serves = {m["id"]: {s["api"]: s["how"] for s in m["serves"]} for m in models["data"]}
    assert serves["gpt-5-mini"]["messages"] == serves["claude-sonnet-4-5"]["chat.completions"] == "translated"
    assert serves["claude-sonnet-4-5"]["messages"] == "native"
    assert all(set(media) <= set(apis[alias])
               for alias in ("gpt-image-1", "gpt-4o-transcribe", "gpt-4o-mini-tts"))
    # What the banner says: Claude answers chat clients; Claude Code (Messages) reaches
    # gpt-5-mini and mistral-large; Codex (Responses) reaches mistral-large and Claude.
    assert "Claude Code answers on gpt-5-mini and mistral-large, Codex on mistral-large" in banner
    assert serves["mistral-large"].items() >= {"chat.completions": "native", "responses": "translated",
                                               "responses.compact": "translated",
                                               "messages": "translated"}.items()
    assert serves["claude-sonnet-4-5"]["responses"] == serves["claude-sonnet-4-5"]["responses.compact"] \
        == "translated"
    assert len(apis) == 8
    status, reply = get(url + "/v1/chat/completions", {"api-key": key},
                        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200 and reply["choices"][0]["message"]["content"]
    status, reply = get(url + "/v1/responses", {"api-key": key}, {"model": "gpt-5-mini", "input": "hi"})
    assert status == 200 and reply["output"][0]["content"][0]["text"]
    status, reply = get(url + "/anthropic/v1/messages", {"x-api-key": key},
                        {"model": "claude-sonnet-4-5", "max_tokens": 16,
                         "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200 and reply["content"][0]["text"]


def test_db_upgrade_and_a_schema_newer_than_the_gateway(tmp_path: Path, database: str) -> None:
    path = write(tmp_path, "auth: {allow_anonymous: true}\nserver: {host: 127.0.0.1}\n"
                 "deployments: [{name: a, model: a, backends: [{url: 'http://127.0.0.1:9', api: openai}]}]\n")
    result = run("db", "current", "--config", str(path))
    assert result.returncode == 0 and "at none" in result.stdout
    result = run("db", "upgrade", "--config", str(path))
    assert result.returncode == 0 and "upgraded to" in result.stdout
    head = result.stdout.split("upgraded to ")[1].strip()
    assert f"at {head}" in run("db", "current", "--config", str(path)).stdout
    # A later gateway migrated it further: this one must not write into that schema.
    import sqlite3
    with sqlite3.connect(database.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    result = run("serve", "--config", str(path))
    assert result.returncode == 2 and "newer than this gateway knows" in result.stderr
    assert "Traceback" not in result.stderr


def test_only_an_older_schema_needs_the_migration_process(tmp_path: Path, database: str) -> None:
    """A start on an empty database makes its schema at head without Alembic; a start on
    the schema it left reads the revision with plain SQL; only a schema at an older
    revision is migrated, by Alembic in its child process (which logs each revision)."""
    port = free_port()
    path = write(tmp_path, "auth: {allow_anonymous: true}\n"
                 f"server: {{host: 127.0.0.1, port: {port}}}\n"
                 "deployments: [{name: a, model: a, backends: [{url: 'http://127.0.0.1:9', api: openai}]}]\n")
    older = tmp_path / "older.db"
    asyncio.run(_migrated_to("0004", f"sqlite:///{older}"))
    logs = []
    for start_, url in (("first", database), ("second", database), ("older", f"sqlite:///{older}")):
        log = tmp_path / f"{start_}.err"
        with log.open("w") as err:
            env = {**os.environ, "MODEL_GATEWAY_DATABASE__URL": url}
            gw = subprocess.Popen([*GATEWAY, "serve", "--config", str(path)],
                                  stdout=subprocess.DEVNULL, stderr=err, text=True, env=env)
            try:
                wait_up(f"http://127.0.0.1:{port}", gw)
            finally:
                gw.send_signal(signal.SIGTERM)
                assert gw.wait(20) == 0
        logs.append(log.read_text())
    first, second, old = logs
    assert f"database empty: its schema made at {HEAD}" in first and "alembic" not in first
    assert "nothing to migrate" in second and "alembic" not in second
    assert "listening on" in second
    assert f"Running upgrade 0004 -> {HEAD}" in old and "Running upgrade  -> 0001" not in old


async def _migrated_to(revision: str, url: str) -> None:
    engine = make_engine(DatabaseConfig(url=url))
    try:
        await upgrade(engine, revision)
    finally:
        await engine.dispose()
