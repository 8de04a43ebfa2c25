"""Limits on a Sentinel-fronted Redis: a real master, replica and sentinel on
loopback; the gateway finds the master through the sentinel, and after a failover
it counts on the new master, with the buckets the replica had copied."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.upstream.cooldowns import CHANNEL, COOLDOWNS
from tests import waiting
from tests.conftest import KEY_B, RedisServer, Stack, default_config, free_port
from tests.waiting import until

MASTER = "gateway-limits"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True, timeout=10).stdout.strip()


def wait_for(check: Any, what: str, seconds: float = 30) -> None:
    waiting.wait_for(check, timeout=seconds, what=what, interval=0.1)


@dataclass
class Sentinel:
    master: RedisServer
    replica: RedisServer
    port: int

    def master_port(self) -> int:
        return int(cli(self.port, "sentinel", "get-master-addr-by-name", MASTER).split()[-1])


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Sentinel]:
    master = RedisServer()
    replica = RedisServer("--replicaof", "127.0.0.1", str(master.port))
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {master.port} 1\n"
                    f"sentinel down-after-milliseconds {MASTER} 1000\n"
                    f"sentinel failover-timeout {MASTER} 5000\n")
    proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        setup = Sentinel(master, replica, port)
        wait_for(lambda: str(replica.port) in cli(port, "sentinel", "replicas", MASTER),
                 "the sentinel to learn of the replica")
        wait_for(lambda: "master_link_status:up" in cli(replica.port, "info", "replication"),
                 "the replica to sync")
        yield setup
    finally:
        proc.terminate()
        proc.wait(10)
        replica.remove()
        master.remove()


async def post(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.post(
            url + "/v1/chat/completions", json=CHAT, headers={"api-key": KEY_B}) as response:
        await response.read()
        return response.status


async def test_limits_follow_the_master_through_a_failover(
        sentinel: Sentinel, make_stack: Any) -> None:
    def config(sim: str) -> dict[str, Any]:
        made = default_config(sim)
        made["redis"] = {"url": f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER}/0",
                         "on_error": "closed"}
        # 20 requests at once, then 1 per second.
        made["deployments"][0]["limits"] = {"requests_per_minute": 60,
                                            "burst": {"requests": 20}}
        return made

    stack: Stack = make_stack(config)
    assert [await post(stack.url) for _ in range(8)] == [200] * 8
    keys = cli(sentinel.master.port, "keys", "*").split()
    assert keys, "the limiter counts on the master the sentinel named"
    wait_for(lambda: cli(sentinel.replica.port, "keys", "*").split() == keys,
             "the buckets to reach the replica")

    assert cli(sentinel.port, "sentinel", "failover", MASTER) == "OK"
    wait_for(lambda: sentinel.master_port() == sentinel.replica.port, "the failover")
    wait_for(lambda: "role:master" in cli(sentinel.replica.port, "info", "replication"),
             "the replica to be promoted")
    # Until the sentinel demotes the old master, a connection already open to it still
    # writes there: Sentinel's own split-brain window, not the gateway's to close.
    wait_for(lambda: "role:slave" in cli(sentinel.master.port, "info", "replication"),
             "the old master to be demoted")

    # Requests carry on against the new master; a moment of 503s while the old
    # connection finds out is allowed (on_error: closed), a wrong answer is not.
    statuses = []
    deadline = time.monotonic() + 20
    while 429 not in statuses and time.monotonic() < deadline:
        statuses.append(await post(stack.url))
    assert set(statuses) <= {200, 429, 503}, statuses
    # The 8 requests made before the failover still count: at most 12 + refill more
    # were admitted before the first 429.
    admitted = statuses.count(200)
    assert 429 in statuses and 1 <= admitted <= 12 + 20, statuses
    # The new master is the one that counts: one more admitted request (after a
    # refill) moves its buckets' clock.
    requests_bucket = next(k for k in keys if k.endswith(":requests"))
    before = int(cli(sentinel.replica.port, "hget", requests_bucket, "t"))

    async def admitted_again() -> bool:  # once the bucket has refilled one (1 a second)
        return await post(stack.url) == 200

    await until(admitted_again, what="a request admitted after a refill", interval=0.2)
    assert int(cli(sentinel.replica.port, "hget", requests_bucket, "t")) > before


async def test_cooldowns_reach_the_other_replicas_through_the_sentinel_master(
        sentinel: Sentinel, make_stack: Any) -> None:
    def config(sim: str) -> dict[str, Any]:
        made = default_config(sim)
        made["redis"] = {"url": f"redis+sentinel://127.0.0.1:{sentinel.port}/{MASTER}/0"}
        # Each test stack has its own simulator: the backend is named, as replicas of one
        # gateway share one config, and so its names.
        made["deployments"][0]["backends"][0]["name"] = "east"
        return made

    one: Stack = make_stack(config)
    other: Stack = make_stack(config)
    # Both replicas listen on the channel (on the master the sentinel names).
    wait_for(lambda: cli(sentinel.master_port(), "pubsub", "numsub", CHANNEL).split()[-1] == "2",
             "both replicas subscribed")

    # A real 429 from one replica's upstream, asking for a minute ...
    async with aiohttp.ClientSession() as session, session.post(
            one.url + "/v1/chat/completions", json=CHAT, headers={
                "api-key": KEY_B, "x-sim-fault": "429", "x-sim-retry-after-ms": "60000"}) as r:
        assert r.status == 429
    assert [rec.outcome for rec in one.sim.records] == ["fault:429"]

    # ... reaches the other, which then keeps its own upstream out of it too.
    async def cooling() -> bool:
        async with aiohttp.ClientSession() as session, session.get(other.url + "/metrics") as r:
            text = await r.text()
        return 'gateway_backend_cooling_down{backend="east",deployment="chat"} 1.0' in text

    await until(cooling, what="the cooldown applied by the other replica")
    assert other.app[COOLDOWNS].received >= 1
    assert await post(other.url) == 429
    assert other.sim.count == 0  # not asked: it rests for the minute the upstream asked
