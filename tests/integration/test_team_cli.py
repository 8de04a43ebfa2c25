"""`model-gateway consumers|keys|usage` as an operator uses them, on the database a
running gateway uses (SQLite, the embedded default): what they change reaches the
gateway within its refresh interval, keys are shown once, usage comes out as JSON or
CSV, and mistakes get a message, not a traceback."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from policies.auth import hash_key
from tests.conftest import GATEWAY, start_gateway, start_simulator
from tests.waiting import until, wait_for


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args, "--config", str(config)], capture_output=True,
                          text=True, timeout=60, env=os.environ.copy())


async def status(url: str, key: str) -> int:
    async with aiohttp.ClientSession() as s, s.post(
            url + "/v1/chat/completions", headers={"api-key": key},
            json={"model": "chat", "messages": [{"role": "user", "content": "hello"}]}) as r:
        await r.read()
        return r.status


async def eventually(url: str, key: str, wanted: int) -> None:
    async def answers() -> bool:
        return await status(url, key) == wanted

    await until(answers, what=f"{url} answering {wanted}", interval=0.1)


async def test_consumers_keys_and_usage_from_the_command_line(
        tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    sim = start_simulator(background)
    config: dict[str, Any] = {
        "admin": {"api_keys": {"ops": hash_key("admin-cli")}, "refresh_seconds": 0.2},
        "ledger": {"flush_seconds": 0.2, "spool_dir": str(tmp_path / "spool")},
        "consumers": [{"name": "static", "api_keys": [hash_key("static-key")],
                       "deployments": ["*"]}],
        "deployments": [{"name": "chat", "model": "m", "backends": [
            {"url": sim + "/v1", "api": "openai"}]}],
    }
    url, _ = start_gateway(config, tmp_path, background)
    path = tmp_path / "gw.yaml"  # the file the gateway reads

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"quotas": {"requests_per_day": 1000},
                                "metadata": {"owner": "data-team"}}))
    made = cli(path, "consumers", "create", "batch", "--deployments", "chat", "--spec", str(spec))
    assert made.returncode == 0, made.stderr
    listed = cli(path, "consumers", "list")
    assert "static  (config)" in listed.stdout and "batch  (database)" in listed.stdout

    created = cli(path, "keys", "create", "batch", "--description", "nightly job")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("mgk_")
    await eventually(url, key, 200)

    keys = cli(path, "keys", "list", "batch")
    [line] = keys.stdout.strip().splitlines()
    key_id = line.split()[0]
    assert "active" in line and "nightly job" in line
    assert key not in keys.stdout and hash_key(key) not in keys.stdout

    since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)).isoformat()
    until = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()
    for _ in range(3):
        assert await status(url, key) == 200

    def four_in_the_ledger() -> list[dict[str, str]] | None:  # it trails by its flush interval
        report = cli(path, "usage", "--from", since, "--to", until, "--csv")
        rows = [r for r in csv.DictReader(io.StringIO(report.stdout)) if r["consumer"] == "batch"]
        return rows if rows and int(rows[0]["requests"]) == 4 else None

    rows = await asyncio.to_thread(wait_for, four_in_the_ledger, what="the four requests in the ledger",
                                   interval=0.2)
    assert [(r["deployment"], int(r["requests"])) for r in rows] == [("chat", 4)]
    assert int(rows[0]["prompt_tokens"]) > 0 and int(rows[0]["completion_tokens"]) == 64
    as_json = json.loads(cli(path, "usage", "--from", since, "--to", until,
                             "--consumer", "batch").stdout)
    assert as_json[0]["requests"] == 4

    assert cli(path, "keys", "revoke", "batch", key_id).returncode == 0
    await eventually(url, key, 401)
    again = cli(path, "keys", "revoke", "batch", key_id)
    assert again.returncode == 1 and "not" in again.stderr.lower() and "Traceback" not in again.stderr

    # Mistakes: a clear message and a non-zero status.
    for args, message in [
        (("consumers", "create", "static", "--deployments", "chat"), "config file"),
        (("consumers", "create", "other", "--deployments", "nope"), "unknown deployments"),
        (("consumers", "create", "bad name", "--deployments", "chat"), "name"),
        (("keys", "create", "nobody"), "nobody"),
        (("consumers", "delete", "nobody"), "nobody"),
    ]:
        result = cli(path, *args)
        assert result.returncode != 0, args
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)

    assert cli(path, "consumers", "delete", "batch").returncode == 0
    assert "batch" not in cli(path, "consumers", "list").stdout
    audit = json.loads(await _admin_get(url, "/admin/v1/audit"))
    actions = [a["action"] for a in reversed(audit["data"])]
    assert actions == ["consumer.create", "key.create", "key.revoke", "consumer.delete"]
    assert all(a["actor"].startswith("cli:") for a in audit["data"])


async def _admin_get(url: str, path: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url + path,
                                                   headers={"api-key": "admin-cli"}) as r:
        return await r.text()
