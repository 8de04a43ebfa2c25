"""The soak: the gateway and the simulator as processes; after a warm-up, many plain
requests and many streams abandoned by their clients mid-way. The gateway's RSS, open
descriptors and event-loop tasks are read before and after: a leak shows as growth.

    python -m tests.reliability.soak --requests 100000 --aborts 10000   # docs/reliability.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from policies.auth import hash_key
from tests.conftest import free_port, wait_up
from tests.waiting import until

GATEWAY = [sys.executable, "-m", "gateway"]
KEY = "soak-key"
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}


def _proc(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    return {"rss_mb": round(rss, 1), "open_fds": len(os.listdir(f"/proc/{pid}/fd"))}


async def _tasks(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url + "/metrics") as r:
        text = await r.text()
    return int(float(re.search(r"^gateway_event_loop_tasks (\S+)", text, re.M).group(1)))  # type: ignore[union-attr]


async def _plain(session: aiohttp.ClientSession, url: str, n: int, concurrency: int) -> int:
    errors = 0
    queue = iter(range(n))

    async def worker() -> None:
        nonlocal errors
        for _ in queue:
            async with session.post(url + "/v1/chat/completions", json=BODY,
                                    headers={"api-key": KEY}) as r:
                await r.read()
                errors += r.status != 200

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


async def _aborted(session: aiohttp.ClientSession, url: str, n: int, concurrency: int) -> int:
    errors = 0
    queue = iter(range(n))

    async def worker() -> None:
        nonlocal errors
        for _ in queue:
            r = await session.post(url + "/v1/chat/completions", json={**BODY, "stream": True},
                                   headers={"api-key": KEY, "x-sim-token-ms": "20"})
            errors += r.status != 200
            await r.content.readuntil(b'"content":"')
            r.close()  # the client leaves in the middle of the stream

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


async def _inflight(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(url + "/metrics") as r:
        text = await r.text()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("gateway_inflight_requests{"))


async def _measure(session: aiohttp.ClientSession, url: str, pid: int) -> dict[str, Any]:
    # What was abandoned has been noticed and closed: nothing in flight, and the loop's
    # task count settled (two reads in a row agree).
    async def idle() -> bool:
        return await _inflight(session, url) == 0

    await until(idle, what="no request in flight", interval=0.1)
    last: list[int] = []

    async def settled() -> int | None:
        last.append(await _tasks(session, url))
        return last[-1] if len(last) > 1 and last[-1] == last[-2] else None

    tasks = await until(settled, what="the task count settled", interval=0.2)
    return {**_proc(pid), "tasks": tasks}


def soak(requests: int, aborts: int, folder: Path) -> dict[str, Any]:
    sim_port, port = free_port(), free_port()
    sim = subprocess.Popen([*GATEWAY, "simulate", "--port", str(sim_port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = {"server": {"host": "127.0.0.1", "port": port, "forward_request_headers": ["x-sim-*"]},
              "database": {"url": f"sqlite:///{folder}/soak.db"},
              "consumers": [{"name": "soak", "api_keys": [hash_key(KEY)], "deployments": ["*"],
                             "limits": {"tokens_per_minute": 10**12, "requests_per_minute": 10**9}}],
              "deployments": [{"name": "chat", "model": "m", "backends": [
                  {"url": f"http://127.0.0.1:{sim_port}/v1", "api": "openai"}]}]}
    (folder / "gw.yaml").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_GATEWAY_")}
    gw = subprocess.Popen([*GATEWAY, "serve", "--config", str(folder / "gw.yaml")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_up(f"http://127.0.0.1:{sim_port}", sim)  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{port}"
        wait_up(url, gw)  # type: ignore[arg-type]
        return asyncio.run(_run(url, gw.pid, requests, aborts))
    finally:
        for proc in (gw, sim):
            proc.terminate()
            proc.wait(10)


async def _run(url: str, pid: int, requests: int, aborts: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _plain(session, url, min(2000, requests), 32)
        await _aborted(session, url, min(200, aborts), 16)
        before = await _measure(session, url, pid)
        started = time.monotonic()
        errors = await _plain(session, url, requests, 32)
        errors += await _aborted(session, url, aborts, 32)
        seconds = time.monotonic() - started
        after = await _measure(session, url, pid)
    return {"requests": requests, "aborted_streams": aborts, "errors": errors,
            "seconds": round(seconds, 1), "before": before, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--aborts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(soak(args.requests, args.aborts, Path(folder)), indent=2))


if __name__ == "__main__":
    main()
