"""Exactness across replicas: 4 gateway processes share one Redis (single node, or
a local 3-node Redis Cluster); 64 concurrent clients saturate a small limit, and
what is admitted stays within capacity + rate x elapsed and reaches >= 98 % of it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from policies.auth import hash_key
from tests.conftest import GATEWAY, RedisServer, free_port, wait_up
from tests.integration.test_reload import logged
from tests.waiting import wait_for

KEY = "replica-key"
SECONDS = 4.0


@pytest.fixture
def cluster() -> Iterator[str]:
    folder = tempfile.mkdtemp()
    ports = [free_port() for _ in range(3)]
    nodes = [RedisServer("--cluster-enabled", "yes", "--cluster-config-file",
                         f"{folder}/nodes-{p}.conf", "--dir", folder, port=p) for p in ports]
    try:
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=30)
        wait_for(lambda: "cluster_state:ok" in subprocess.run(
            ["redis-cli", "-p", str(ports[0]), "cluster", "info"], capture_output=True,
            text=True).stdout, what="the cluster ready", interval=0.1)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for node in nodes:
            node.remove()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def single() -> Iterator[str]:
    server = RedisServer()
    yield server.url
    server.remove()


def start_stack(redis_url: str, cluster: bool, background: list[subprocess.Popen[str]],
                folder: Path) -> str:
    sim_port, port = free_port(), free_port()
    sim = subprocess.Popen([*GATEWAY, "simulate", "--port", str(sim_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    background.append(sim)
    wait_up(f"http://127.0.0.1:{sim_port}", sim)
    backend = [{"url": f"http://127.0.0.1:{sim_port}/v1", "api": "openai"}]
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        # A generous timeout: ten processes share two cores here, and this test is
        # about exactness, not about how Redis timeouts are handled.
        "redis": {"url": redis_url, "cluster": cluster, "on_error": "closed",
                  "timeout_seconds": 3},
        "consumers": [{"name": "load", "api_keys": [hash_key(KEY)], "deployments": ["*"]}],
        "deployments": [
            # 50 requests/s, 50 at once.
            {"name": "chat", "model": "m", "backends": backend,
             "limits": {"requests_per_minute": 3000, "burst": {"requests": 50}}},
            # 500 tokens/s, 500 at once; each request below costs exactly 10 tokens.
            {"name": "embed", "model": "e", "backends": backend,
             "limits": {"tokens_per_minute": 30000, "burst": {"tokens": 500}}},
        ],
    }
    path = folder / "gw.yaml"
    path.write_text(json.dumps(config))
    log = path.with_suffix(".log").open("w")
    gw = subprocess.Popen([*GATEWAY, "serve", "--config", str(path), "--workers", "4"],
                          stdout=subprocess.DEVNULL, stderr=log, text=True)
    background.append(gw)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, gw)
    wait_for(lambda: logged(path.with_suffix(".log"), "listening on") == 4,
             what="all four workers listening")
    return url


async def saturate(url: str, path: str,
                   body: dict[str, Any]) -> tuple[int, int, float, float]:
    """64 clients for SECONDS; returns (admitted, errors other than 429, shortest,
    longest). The admissions happened after the first request was sent and before the
    last admitted answer arrived: `longest`, for the upper bound. They spanned at least
    from the first admitted answer to the last admitted request's send: `shortest`, for
    the lower bound, so that neither the way in (the full bucket waiting for the first
    request to reach Redis) nor a slow final answer on a loaded machine counts as
    capacity left unused."""
    admitted = errors = 0
    first_admitted = last_admitted = last_admitted_sent = 0.0
    seen: list[str] = []
    # 64 connections, opened once: SO_REUSEPORT spreads them over the four workers.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        # Warm up: open the connections and let every worker load its Lua scripts,
        # then wait until the buckets are full again.
        async def once() -> None:
            async with session.post(url + path, json=body, headers={"api-key": KEY}) as r:
                await r.read()

        await asyncio.gather(*(once() for _ in range(64)))
        # Not an ordering wait: the buckets refill to full in at most this long, whatever
        # the machine's speed (a sleep never ends early).
        await asyncio.sleep(1.5)
        started = time.monotonic()
        deadline = started + SECONDS

        async def client() -> None:
            nonlocal admitted, errors, first_admitted, last_admitted, last_admitted_sent
            while (sent := time.monotonic()) < deadline:
                async with session.post(url + path, json=body, headers={"api-key": KEY}) as r:
                    await r.read()
                    if r.status == 200:
                        admitted += 1
                        last_admitted = time.monotonic()
                        first_admitted = first_admitted or last_admitted
                        last_admitted_sent = max(last_admitted_sent, sent)
                    elif r.status != 429:
                        errors += 1
                        seen.append(f"{r.status} {(await r.text())[:200]}")

        await asyncio.gather(*(client() for _ in range(64)))
    assert not seen, seen[:3]
    return admitted, errors, last_admitted_sent - first_admitted, last_admitted - started


@pytest.mark.parametrize("mode", ["single", "cluster"])
async def test_exact_across_four_replicas(mode: str, request: pytest.FixtureRequest,
                                          background: list[subprocess.Popen[str]],
                                          tmp_path: Path) -> None:
    redis_url = request.getfixturevalue(mode)
    url = start_stack(redis_url, mode == "cluster", background, tmp_path)

    admitted, errors, shortest, longest = await saturate(
        url, "/v1/chat/completions", {"model": "chat", "messages": [{"role": "user", "content": "x"}]})
    assert errors == 0
    assert 0.98 * (50 + 50 * shortest) <= admitted <= 50 + 50 * longest, (
        admitted, shortest, longest)

    # "aaa" is 1 token by the gateway's estimate and by the simulator's count.
    admitted, errors, shortest, longest = await saturate(
        url, "/v1/embeddings", {"model": "embed", "input": ["aaa"] * 10})
    tokens = admitted * 10
    assert errors == 0
    assert 0.98 * (500 + 500 * shortest) <= tokens <= 500 + 500 * longest, (
        tokens, shortest, longest)

