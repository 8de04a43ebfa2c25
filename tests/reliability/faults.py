"""The fault matrix: for each way an upstream fails, a mix of plain and streamed
requests through a rate-limited deployment. Every request must get an answer in the
contract's shape (none lost: no hang, no reset, no 500) and the token bucket must
hold exactly what the access log says was used (none mis-accounted). Two more rows:
Redis going down and coming back under limits kept in Redis, and SIGTERM while
streams are running (tests/integration/test_drain.py runs that as processes).

    python -m tests.reliability.faults --requests 200     # figures for docs/reliability.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from tests.conftest import KEY_A, OPENAI_KEY, UPSTREAM_KEY, RedisServer, Stack, default_config
from tests.waiting import until

CAPACITY = 10**9
FAULTS = ("429", "500", "503", "hang", "reset", "text-error", "not-object", "stall",
          "garbage-event", "oversized", "no-usage", "no-content-type")
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 40}


def limited(redis_url: str | None = None) -> Any:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["consumers"][0]["limits"] = {"tokens_per_minute": 1, "burst": {"tokens": CAPACITY}}
        config["deployments"][0]["backends"][0]["timeouts"] = {"response": 1.0, "idle": 1.0}
        # Each row must meet its own fault, not a breaker opened by the row before.
        config["deployments"][0]["routing"] = {"breaker": {"failures": 10**6}}
        config["server"]["max_response_bytes"] = 1_000_000
        if redis_url:
            config["redis"] = {"url": redis_url, "on_error": "open", "timeout_seconds": 0.2}
        return config
    return make


@dataclass
class Row:
    fault: str
    sent: int
    statuses: dict[str, int]
    lost: int  # no answer, a reset, a 500, or an answer not in the contract's shape
    misaccounted_tokens: int  # the bucket against the access log


async def one(session: aiohttp.ClientSession, url: str, fault: str | None, stream: bool) -> str:
    headers = {"api-key": KEY_A, **({"x-sim-fault": fault} if fault else {}),
               "x-sim-size": "2000000"}
    try:
        async with asyncio.timeout(15), session.post(
                url + "/v1/chat/completions", json={**BODY, "stream": stream}, headers=headers) as r:
            raw = await r.read()
    except (aiohttp.ClientError, TimeoutError):
        return "lost"
    if r.status != 200:
        # An upstream's error passed on is an answer; the gateway's own 500 is not.
        return str(r.status) if _error_json(raw) and b'"internal_error"' not in raw else "lost"
    if stream:
        if not raw.endswith(b"\n\n"):
            return "lost"
        return "200 stream" + (" ended by an error event" if b'"error":{' in raw else "")
    return "200" if raw.startswith(b"{") else "lost"


def _error_json(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw).get("error"), dict)
    except (ValueError, AttributeError):
        return False


async def probe(stack: Stack) -> int:
    """Tokens left in the consumer's bucket, less what the probe itself reserves."""
    left = await _probe(stack)
    assert left is not None, "the probe was not rate limited"
    return left


async def _probe(stack: Stack) -> int | None:
    """None when the limits were not checked (their store unavailable, open on error)."""
    async with aiohttp.ClientSession() as session, session.post(
            stack.url + "/v1/chat/completions", json={**BODY, "max_tokens": 1},
            headers={"api-key": KEY_A}) as r:
        await r.read()
        left = r.headers.get("x-ratelimit-remaining-tokens")
        return int(left) if left is not None else None


async def _all_backends_available(stack: Stack) -> bool:
    async with aiohttp.ClientSession() as session, session.get(stack.url + "/metrics") as r:
        lines = [line for line in (await r.text()).splitlines()
                 if line.startswith("gateway_backend_available{")]
    return bool(lines) and all(line.endswith(" 1.0") for line in lines)


@contextlib.contextmanager
def upstream_keys() -> Iterator[None]:
    """The simulator's credentials in the environment (the config names them) for as
    long as the matrix runs, and the environment as it was afterwards."""
    wanted = {"TEST_UPSTREAM_KEY": UPSTREAM_KEY, "TEST_OPENAI_KEY": OPENAI_KEY}
    before = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def scenario(stack: Stack, fault: str | None, requests: int) -> Row:
    before_log = len(stack.access_log())
    before = await probe(stack)
    statuses: dict[str, int] = {}
    async with aiohttp.ClientSession() as session:
        outcomes = await asyncio.gather(*(one(session, stack.url, fault, i % 2 == 1)
                                          for i in range(requests)))
    for outcome in outcomes:
        statuses[outcome] = statuses.get(outcome, 0) + 1
    # Settled and counted: each request's access-log line is written after its settlement.
    await until(lambda: len(stack.access_log()) - before_log == 1 + requests,
                what="every request of the row settled")
    after = await probe(stack)
    # Both probes reserve the same; between their admissions the bucket lost the first
    # probe's usage and every request's. The lines: the first probe, the requests, the
    # second probe (whose usage is not settled yet, and not counted).
    lines = stack.access_log()[before_log:]
    used = sum((line["prompt_tokens"] or 0) + (line["completion_tokens"] or 0)
               for line in lines[:-1])
    # The bucket refills at 1 token a minute: less than one token over a scenario.
    drift = round((before - after) - used)
    return Row(fault or "none", requests, statuses, statuses.get("lost", 0), abs(drift))


async def matrix(requests: int, redis: bool = True) -> list[Row]:
    with upstream_keys():
        return await _matrix(requests, redis)


async def _matrix(requests: int, redis: bool) -> list[Row]:
    from gateway.simulator import SimulatorSettings

    sim = SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY), retry_after_ms=50)
    rows = []
    stack = Stack(limited(), sim).start()
    try:
        for fault in (None, *FAULTS):
            rows.append(await scenario(stack, fault, requests))
            # A 429's cooldown (50 ms) is over before the next row.
            await until(lambda: _all_backends_available(stack), what="the backend available")
    finally:
        stack.stop()
    if redis:
        rows.append(await redis_outage(requests, sim))
    return rows


async def redis_outage(requests: int, sim: Any) -> Row:
    """Limits in Redis (open on error); Redis stops, requests go on, Redis comes back,
    and requests made after its return are counted exactly."""
    server = RedisServer()
    stack = Stack(limited(server.url), sim).start()
    try:
        statuses: dict[str, int] = {}
        async with aiohttp.ClientSession() as session:
            server.stop()
            during = await asyncio.gather(*(one(session, stack.url, None, i % 2 == 1)
                                            for i in range(requests // 2)))
            server.start()
            # The store's fail-fast second is over: limits are checked again.
            await until(lambda: _probe(stack), what="rate limits checked again", interval=0.1)
            row = await scenario(stack, None, requests - requests // 2)
        for outcome in [*during, *(k for k, v in row.statuses.items() for _ in range(v))]:
            statuses[outcome] = statuses.get(outcome, 0) + 1
        return Row("redis down and back", requests, statuses, statuses.get("lost", 0),
                   row.misaccounted_tokens)
    finally:
        stack.stop()
        server.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per fault")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MODEL_GATEWAY_DATABASE__URL"] = f"sqlite:///{folder}/faults.db"
        started = time.monotonic()
        rows = asyncio.run(matrix(args.requests))
    print(json.dumps({"seconds": round(time.monotonic() - started, 1),
                      "rows": [asdict(r) for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
