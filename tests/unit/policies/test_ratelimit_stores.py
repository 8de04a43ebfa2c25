"""The bucket semantics, checked the same way against both stores (a real
redis-server for the Redis one)."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator

import pytest

from gateway.core.redis_client import connect
from policies.ratelimit import Bucket, LimitsConfig, MemoryStore, Store, buckets_for
from policies.ratelimit.redis_store import RedisStore
from tests.conftest import RedisServer


def bucket(key: str, capacity: float, per_second: float, kind: str = "tokens") -> Bucket:
    return Bucket(f"mg:rl:{{t}}:{key}", "deployment", kind, capacity, per_second)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server = RedisServer()
    redis_store = RedisStore(connect(server.url))
    try:
        yield redis_store
    finally:
        await redis_store.close()
        server.remove()


async def test_admits_until_empty_then_says_how_long_to_wait(store: Store) -> None:
    b = bucket("a", capacity=10, per_second=1)
    for _ in range(5):
        assert (await store.admit([b], [2])).admitted
    verdict = await store.admit([b], [3])
    assert not verdict.admitted and verdict.failed == 0
    assert 2.5 <= verdict.wait_s <= 3.01  # 3 units at 1/s, minus what refilled meanwhile


async def test_all_or_nothing_across_buckets(store: Store) -> None:
    roomy, tight = bucket("roomy", 100, 1), bucket("tight", 5, 1)
    assert (await store.admit([roomy, tight], [5, 5])).admitted
    verdict = await store.admit([roomy, tight], [5, 5])
    assert not verdict.admitted and verdict.failed == 1
    # The rejected request charged nothing: roomy still holds 95 (plus a trickle).
    after = await store.admit([roomy], [0])
    assert 95 <= after.remaining[0] <= 96


async def test_cost_over_capacity_never_fits(store: Store) -> None:
    verdict = await store.admit([bucket("small", 10, 1)], [11])
    assert not verdict.admitted and math.isinf(verdict.wait_s)


async def test_settlement_refunds_and_charges(store: Store) -> None:
    b = bucket("s", capacity=1000, per_second=1 / 600)  # refill negligible in a test
    await store.admit([b], [300])
    await store.settle([b], [-250])  # used 50 of the 300 reserved
    left = (await store.admit([b], [0])).remaining[0]
    assert 949 <= left <= 951
    await store.settle([b], [2000])  # a big overrun puts the bucket in debt
    assert not (await store.admit([b], [1])).admitted


async def test_refill_is_continuous(store: Store) -> None:
    b = bucket("r", capacity=2, per_second=20, kind="requests")
    assert (await store.admit([b], [2])).admitted
    assert not (await store.admit([b], [1])).admitted
    await asyncio.sleep(0.06)  # 1.2 units back
    assert (await store.admit([b], [1])).admitted


async def test_never_more_than_capacity_plus_rate_times_t(store: Store) -> None:
    """What a bucket admits is exactly what it holds and earns: its capacity plus its
    rate times the time, less what overflowed while nobody asked (a gap longer than a
    full refill), less what is still in it at the end (counted by draining it). Both
    bounds hold however slowly the loop runs."""
    b = bucket("bound", capacity=5, per_second=50, kind="requests")
    started = time.monotonic()
    admitted, attempts = 0, [started]
    while time.monotonic() - started < 0.5:
        if (await store.admit([b], [1])).admitted:
            admitted += 1
        attempts.append(time.monotonic())
        await asyncio.sleep(0.001)
    draining = time.monotonic()
    left = 0
    while (await store.admit([b], [1])).admitted:
        left += 1
    ended = time.monotonic()
    full_refill = 5 / 50
    # The bucket begins (full) when the store first sees it, which is before the first
    # answer came back (attempts[1]) but may be well after `started` on a loaded machine:
    # what it surely earned runs from that answer to the drain.
    first = attempts[1]
    overflowed = 50 * sum(max(0.0, later - earlier - full_refill)
                          for earlier, later in itertools.pairwise(attempts[1:]))
    assert admitted + left <= 5 + 50 * (ended - started) + 1
    assert admitted + left >= 5 + 50 * (draining - first) - overflowed - 2
    assert admitted > 5  # it refilled while asked


async def test_concurrent_calls_are_each_counted_once(store: Store) -> None:
    # The Redis store sends calls made together in one pipeline: each must still
    # get its own answer, in order, and charge the bucket exactly once.
    b = bucket("together", capacity=50, per_second=1 / 600)
    verdicts = await asyncio.gather(*(store.admit([b], [1]) for _ in range(80)))
    assert sum(v.admitted for v in verdicts) == 50
    assert all(v.admitted for v in verdicts[:50]) and not any(v.admitted for v in verdicts[50:])
    await asyncio.gather(*(store.settle([b], [-1]) for _ in range(10)))
    assert 10 <= (await store.admit([b], [0])).remaining[0] < 10.5


async def test_a_cancelled_caller_leaves_the_others_their_answers(store: Store) -> None:
    b = bucket("cancel", capacity=100, per_second=1 / 600)
    calls = [asyncio.ensure_future(store.admit([b], [1])) for _ in range(20)]
    calls[3].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert all(r.admitted for i, r in enumerate(results) if i != 3)  # type: ignore[union-attr]
    # The cancelled call may have reached the store before it was cancelled, or not.
    assert 80 <= (await store.admit([b], [0])).remaining[0] < 81.5


async def test_scripts_lost_by_redis_are_loaded_again(redis_server: RedisServer) -> None:
    client = connect(redis_server.url)
    store = RedisStore(client)
    try:
        b = bucket("flushed", capacity=100, per_second=1 / 600)
        assert (await store.admit([b], [1])).admitted
        await client.script_flush()  # as after a restart or a failover
        verdicts = await asyncio.gather(*(store.admit([b], [1]) for _ in range(20)))
        assert all(v.admitted for v in verdicts)
        assert 79 <= (await store.admit([b], [0])).remaining[0] <= 79.5
    finally:
        await store.close()


def test_buckets_share_one_hash_tag_per_deployment() -> None:
    plan = buckets_for("gpt-4o", "team",
                       LimitsConfig(requests_per_minute=60),
                       LimitsConfig(requests_per_minute=6, tokens_per_minute=600))
    assert [(b.scope, b.kind, b.capacity, b.per_second) for b in plan] == [
        ("deployment", "requests", 60, 1.0), ("consumer", "requests", 6, 0.1),
        ("consumer", "tokens", 600, 10.0)]
    assert {b.key.split("}")[0] for b in plan} == {"mg:rl:{gpt-4o"}
