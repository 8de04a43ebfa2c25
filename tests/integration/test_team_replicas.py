"""Team access across replicas, with real processes: gateways on one PostgreSQL (a
server of the test's own) and one redis-server. Keys made or revoked on one replica
take effect on the other within 2 s; the usage ledger holds exactly what the
upstream reported when a replica is killed in the middle of writing a batch and
started again."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from policies.auth import hash_key
from tests.conftest import PostgresServer, RedisServer, start_gateway, start_simulator
from tests.integration.test_reload import logged
from tests.waiting import until

ADMIN = "admin-key-replicas"
HI = [{"role": "user", "content": "Say something about the sea."}]


def team_config(sim: str, postgres: str, redis: str | None, spool: Path) -> dict[str, Any]:
    config: dict[str, Any] = {
        "database": {"url": postgres, "password_env": "PG_TEST_PASSWORD"},
        "admin": {"api_keys": {"ops": hash_key(ADMIN)}, "refresh_seconds": 0.5},
        "ledger": {"flush_seconds": 0.3, "spool_dir": str(spool)},
        "deployments": [{"name": "chat", "model": "gpt-4o-mini", "backends": [
            {"url": sim + "/v1", "api": "openai"}]}],
    }
    if redis:
        config["redis"] = {"url": redis}
    return config


async def admin(url: str, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as s, s.request(
            method, url + path, json=body, headers={"api-key": ADMIN}) as r:
        assert r.status < 300, (r.status, await r.text())
        return await r.json()


async def status_of(url: str, key: str) -> int:
    async with aiohttp.ClientSession() as s, s.post(
            url + "/v1/chat/completions", json={"model": "chat", "messages": HI},
            headers={"api-key": key}) as r:
        await r.read()
        return r.status


async def answers(url: str, key: str, wanted: int) -> float:
    """Seconds until `key` gets `wanted` from `url` (a figure to print, not to assert:
    how fast depends on the machine; the shared deadline only bounds a hang)."""
    started = time.monotonic()

    async def got() -> bool:
        return await status_of(url, key) == wanted

    await until(got, what=f"{url} answering {wanted}", interval=0.05)
    return time.monotonic() - started


async def test_keys_reach_the_other_replica(
        postgres: str, redis_server: RedisServer, tmp_path: Path,
        background: list[subprocess.Popen[str]]) -> None:
    sim = start_simulator(background)
    config = team_config(sim, postgres, redis_server.url, tmp_path / "spool")
    a, _ = start_gateway(config, tmp_path, background, name="a")
    b, _ = start_gateway(config, tmp_path, background, name="b")

    await admin(a, "POST", "/admin/v1/consumers", {"name": "team", "deployments": ["*"]})
    made = await admin(a, "POST", "/admin/v1/consumers/team/keys", {})
    key = made["key"]
    assert await status_of(a, key) == 200  # at once where it was made
    reached = await answers(b, key, 200)

    listing = await admin(b, "GET", "/admin/v1/consumers")
    assert "team" in [c["name"] for c in listing["data"]]

    await admin(b, "DELETE", f"/admin/v1/consumers/team/keys/{made['id']}")
    assert await status_of(b, key) == 401
    revoked = await answers(a, key, 401)
    print(f"created on A, working on B after {reached:.2f} s; revoked on B, refused on A "
          f"after {revoked:.2f} s")


async def _sum_usage(postgres: str) -> tuple[int, int, int]:
    connection = await asyncpg.connect(postgres, password=PostgresServer.PASSWORD)
    try:
        row = await connection.fetchrow(
            "SELECT coalesce(sum(requests), 0) r, coalesce(sum(prompt_tokens), 0) p, "
            "coalesce(sum(completion_tokens), 0) c FROM usage")
    finally:
        await connection.close()
    return int(row["r"]), int(row["p"]), int(row["c"])


async def _traffic(url: str, key: str, plain: int, streamed: int) -> tuple[int, int]:
    """Plain and streamed requests; the prompt and completion tokens the upstream reported."""
    prompt = completion = 0
    async with aiohttp.ClientSession() as s:
        for _ in range(plain):
            async with s.post(url + "/v1/chat/completions", json={"model": "chat", "messages": HI},
                              headers={"api-key": key}) as r:
                usage = (await r.json())["usage"]
                prompt, completion = prompt + usage["prompt_tokens"], completion + usage[
                    "completion_tokens"]
        for _ in range(streamed):
            async with s.post(url + "/v1/chat/completions", json={
                    "model": "chat", "messages": HI, "stream": True,
                    "stream_options": {"include_usage": True}}, headers={"api-key": key}) as r:
                events = [json.loads(line[6:]) for line in (await r.text()).splitlines()
                          if line.startswith("data: {")]
                usage = events[-1]["usage"]
                prompt, completion = prompt + usage["prompt_tokens"], completion + usage[
                    "completion_tokens"]
    return prompt, completion


async def _aborted(url: str, key: str, n: int) -> None:
    """Streams the client leaves after the first events."""
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            r = await s.post(url + "/v1/chat/completions", json={
                "model": "chat", "messages": HI, "stream": True}, headers={
                "api-key": key, "x-sim-token-ms": "20", "x-sim-tokens": "50"})
            await r.content.readline()
            await r.content.readline()
            r.close()


async def usage_is(postgres: str, wanted: tuple[int, int, int]) -> None:
    async def written() -> bool:
        return await _sum_usage(postgres) == wanted

    await until(written, what=f"the ledger at {wanted}")


async def _metric_answered(url: str, wanted: int) -> bool:
    """Whether `wanted` chat requests were answered (and so settled and counted),
    whatever their status: a stream the client left is 499, or 200 when the gateway
    could still write all of it into the closed connection's buffers."""
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    total = sum(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith("gateway_requests_total{") and 'deployment="chat"' in line)
    return total == wanted


async def _metric_tokens(url: str) -> tuple[int, int]:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    found = {"prompt": 0, "completion": 0}
    for line in text.splitlines():
        if line.startswith("gateway_tokens_total{") and 'consumer="team"' in line:
            kind = line.split('type="')[1].split('"')[0]
            found[kind] += int(float(line.split()[-1]))
    return found["prompt"], found["completion"]


async def test_the_ledger_survives_a_replica_killed_mid_batch(
        postgres: str, tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    sim = start_simulator(background)
    config = team_config(sim, postgres, None, tmp_path / "spool")
    config["consumers"] = [{"name": "team", "api_keys": [hash_key("team-key")],
                            "deployments": ["*"]}]
    url, proc = start_gateway(config, tmp_path, background, name="first")
    prompt, completion = await _traffic(url, "team-key", plain=20, streamed=20)
    await usage_is(postgres, (40, prompt, completion))  # written, batch after batch

    # The next batch blocks on a lock the test holds; the replica is killed while it waits.
    holder = await asyncpg.connect(postgres, password=PostgresServer.PASSWORD)
    lock = holder.transaction()
    await lock.start()
    await holder.execute("LOCK TABLE usage IN ACCESS EXCLUSIVE MODE")
    more = await _traffic(url, "team-key", plain=7, streamed=5)
    prompt, completion = prompt + more[0], completion + more[1]
    # (Asked on another connection: in a transaction, pg_stat_activity is a snapshot.)
    watcher = await asyncpg.connect(postgres, password=PostgresServer.PASSWORD)

    async def blocked() -> int:
        return int(await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query ILIKE '%usage%'"))

    await until(blocked, what="the replica blocked writing its batch", interval=0.05)
    await watcher.close()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    await lock.rollback()
    await holder.close()
    # The process is gone (waited for): nothing more can be written by it.
    assert await _sum_usage(postgres) == (40, prompt - more[0], completion - more[1])

    # Started again on the same spool folder: what the killed one owed is written once.
    url, proc = start_gateway(config, tmp_path, background, name="second")
    await usage_is(postgres, (52, prompt, completion))

    # Aborted streams: the upstream never reports their usage; the gateway counts what
    # it relayed, the same figures in the ledger as in gateway_tokens_total.
    await _aborted(url, "team-key", 5)
    plain = await _traffic(url, "team-key", plain=3, streamed=0)
    # All eight answered here (the aborted ones' settlements and counts done with them).
    await until(lambda: _metric_answered(url, 5 + 3), what="the 5 aborted streams answered")
    counted = await _metric_tokens(url)
    assert counted[1] > plain[1]  # the aborted streams' completions were counted
    await usage_is(postgres, (60, prompt + counted[0], completion + counted[1]))

    # Stopped gracefully, nothing is left in the spool.
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    assert list((tmp_path / "spool").rglob("*.spool")) == []


@pytest.mark.parametrize("kind", ["tokens_per_day", "cost_per_month"])
async def test_quotas_hold_exactly_across_four_replicas(
        kind: str, redis_server: RedisServer, tmp_path: Path,
        background: list[subprocess.Popen[str]]) -> None:
    """64 clients on 4 worker processes sharing Redis spend a quota: what is admitted
    never exceeds it and reaches at least 98 % of it."""
    sim = start_simulator(background)
    quota: dict[str, Any] = {"tokens_per_day": 30000} if kind == "tokens_per_day" else {
        "cost_per_month": 0.03}
    config = {
        "redis": {"url": redis_server.url, "on_error": "closed", "timeout_seconds": 3},
        "ledger": {"spool_dir": str(tmp_path / "spool")},
        "consumers": [{"name": "team", "api_keys": [hash_key("team-key")], "deployments": ["*"],
                       "quotas": quota}],
        # 1 per million input and output tokens: a token costs a micro.
        "deployments": [{"name": "chat", "model": "m", "backends": [
            {"url": sim + "/v1", "api": "openai"}],
            "pricing": {"input_per_million": 1, "output_per_million": 1}}],
    }
    url, _ = start_gateway(config, tmp_path, background, "--workers", "4")
    await until(lambda: logged(tmp_path / "gw.log", "listening on") == 4,
                what="all four workers listening")
    used = admitted = 0
    codes: dict[str, int] = {}
    body = {"model": "chat", "messages": HI, "max_tokens": 40}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def client() -> None:
            nonlocal used, admitted
            refusals = 0
            while refusals < 3:
                async with s.post(url + "/v1/chat/completions", json=body,
                                  headers={"api-key": "team-key", "x-sim-tokens": "12"}) as r:
                    answer = await r.json()
                    if r.status == 200:
                        admitted += 1
                        used += answer["usage"]["total_tokens"]
                    else:
                        code = answer["error"]["code"]
                        codes[code] = codes.get(code, 0) + 1
                        refusals += 1
                        await asyncio.sleep(0.2)  # let in-flight settlements return
        await asyncio.gather(*(client() for _ in range(64)))
    limit = 30000
    assert set(codes) == {"quota_exceeded"}, codes
    assert used <= limit, (used, admitted)
    assert used >= 0.98 * limit, (used, admitted)
    print(f"{kind}: {used} of {limit} used by {admitted} requests ({used / limit:.1%})")
