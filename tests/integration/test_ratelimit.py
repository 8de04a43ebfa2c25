"""Rate limits as clients see them, with the in-process store and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest
import redis.asyncio as aioredis
from azure.ai.inference import ChatCompletionsClient
from azure.ai.inference.models import UserMessage
from azure.core.credentials import AzureKeyCredential
from openai import OpenAI

from gateway.apis.chat import CHAT
from policies.ratelimit import RateLimitPolicy, reserve
from tests.conftest import KEY_A, KEY_B, RedisServer, Stack, default_config
from tests.waiting import until

MESSAGES = [{"role": "user", "content": "count the tokens"}]


def with_limits(redis_url: str | None = None, on_error: str = "open",
                **limits: Any) -> Callable[[str], dict[str, Any]]:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        if redis_url:
            config["redis"] = {"url": redis_url, "on_error": on_error}
        if "deployment" in limits:
            config["deployments"][0]["limits"] = limits["deployment"]
        if "consumer" in limits:
            config["consumers"][0]["limits"] = limits["consumer"]
        if "by_deployment" in limits:
            config["consumers"][0]["limits_by_deployment"] = limits["by_deployment"]
        return config
    return make


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        yield None
        return
    server = RedisServer()
    yield server.url
    server.remove()


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
               key: str = KEY_A, **headers: str) -> tuple[int, dict[str, Any], Any]:
    async with session.post(url + "/v1/chat/completions", json=body,
                            headers={"api-key": key, **headers}) as r:
        raw = await r.read()
        data = await r.json() if r.content_type == "application/json" else {"raw": raw}
        return r.status, data, r.headers


async def test_429_names_the_limit_and_says_when(make_stack: Any, store_url: str | None) -> None:
    stack: Stack = make_stack(with_limits(store_url, deployment={"requests_per_minute": 120},
                                          consumer={"requests_per_minute": 3}))
    body = {"model": "chat", "messages": MESSAGES}
    async with aiohttp.ClientSession() as session:
        results = [await post(session, stack.url, body) for _ in range(4)]
        metrics = await (await session.get(stack.url + "/metrics")).text()
    assert [r[0] for r in results] == [200, 200, 200, 429]
    # The tightest limit: the consumer's 3 requests.
    assert [r[2]["x-ratelimit-remaining-requests"] for r in results[:3]] == ["2", "1", "0"]
    _, error, headers = results[3]
    assert error["error"]["code"] == "429"
    assert "requests limit of consumer team-a on deployment chat (3 per minute)" in error["error"]["message"]
    assert headers["Retry-After"] == "20" and 19000 < int(headers["retry-after-ms"]) <= 20000
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert stack.sim.count == 3  # the rejected request never reached the upstream
    assert ('gateway_ratelimit_rejections_total{consumer="team-a",deployment="chat",'
            'limit="requests",scope="consumer"} 1.0') in metrics


async def test_limits_by_deployment_override_and_pairs_are_separate(make_stack: Any) -> None:
    stack: Stack = make_stack(with_limits(
        consumer={"requests_per_minute": 1}, by_deployment={"embed": {"requests_per_minute": 2}}))
    async with aiohttp.ClientSession() as session:
        chat = [(await post(session, stack.url, {"model": "chat", "messages": MESSAGES}))[0]
                for _ in range(2)]
        embeds = []
        for _ in range(3):
            async with session.post(stack.url + "/v1/embeddings", headers={"api-key": KEY_A},
                                    json={"model": "embed", "input": "x"}) as r:
                embeds.append(r.status)
        other = (await post(session, stack.url, {"model": "chat", "messages": MESSAGES}, KEY_B))[0]
    assert chat == [200, 429]
    assert embeds == [200, 200, 429]
    assert other == 200  # team-b has no limits


async def test_a_request_that_can_never_fit_is_400(make_stack: Any) -> None:
    stack: Stack = make_stack(with_limits(consumer={"tokens_per_minute": 100}))
    async with aiohttp.ClientSession() as session:
        status, body, _ = await post(session, stack.url,
                                     {"model": "chat", "messages": MESSAGES, "max_tokens": 500})
        ok, _, headers = await post(session, stack.url,
                                    {"model": "chat", "messages": MESSAGES, "max_tokens": 20})
    assert status == 400 and body["error"]["code"] == "request_exceeds_limit"
    assert "can never be admitted" in body["error"]["message"]
    assert ok == 200 and "x-ratelimit-remaining-tokens" in headers


async def test_settlement_charges_exactly_what_was_used(make_stack: Any, store_url: str | None) -> None:
    # 1 token per minute of refill: nothing refills during the test, so the bucket
    # shows exactly what was charged.
    capacity = 100_000
    limits = {"tokens_per_minute": 1, "burst": {"tokens": capacity}}
    stack: Stack = make_stack(with_limits(store_url, consumer=limits))
    plain = {"model": "chat", "messages": MESSAGES, "max_tokens": 500}
    streamed = {**plain, "stream": True}
    async with aiohttp.ClientSession() as session:
        await post(session, stack.url, plain)
        await post(session, stack.url, streamed)
        # A client that leaves mid-stream.
        r = await session.post(stack.url + "/v1/chat/completions", json=streamed,
                               headers={"api-key": KEY_A, "x-sim-token-ms": "100"})
        await r.content.readuntil(b'"content":" ')
        r.close()
        # Its access-log line is written once its accounting (and settlement) is done.
        await until(lambda: len(stack.access_log()) == 3, what="the aborted stream settled")
        probe = {"model": "chat", "messages": MESSAGES, "max_tokens": 1}
        _, _, headers = await post(session, stack.url, probe)
    log = [line for line in stack.access_log() if line["route"] == "/v1/chat/completions"]
    first, second, aborted = log[0], log[1], log[2]
    assert first["completion_tokens"] == second["completion_tokens"] == 16
    assert 0 < aborted["completion_tokens"] < 16
    # The aborted stream is charged what the gateway counted of it (the access log shows
    # the same count), the others what the upstream reported.
    used = sum(line["prompt_tokens"] + line["completion_tokens"] for line in (first, second, aborted))
    probe_reserved = reserve(CHAT, probe, 1024).total
    assert int(headers["x-ratelimit-remaining-tokens"]) == capacity - used - probe_reserved


async def test_a_response_never_waits_for_its_settlement(
        make_stack: Any, redis_server: RedisServer) -> None:
    capacity = 100_000
    limits = {"tokens_per_minute": 1, "burst": {"tokens": capacity}}

    def config(sim: str) -> dict[str, Any]:
        made = with_limits(redis_server.url, consumer=limits)(sim)
        made["redis"]["timeout_seconds"] = 120  # the settlement outlasts the pause below
        return made

    stack: Stack = make_stack(config)
    plain = {"model": "chat", "messages": MESSAGES, "max_tokens": 500}
    admin = aioredis.Redis.from_url(redis_server.url)
    async with aiohttp.ClientSession() as session:
        answer = asyncio.ensure_future(post(session, stack.url, plain, **{"x-sim-ttft-ms": "1000"}))
        # Admitted (the upstream has the request), and the upstream still generating ...
        await until(lambda: stack.sim.count == 1, what="the request admitted and sent upstream")
        # ... when Redis stops taking writes, until told otherwise: the settlement has to
        # wait for it, the answer must not.
        assert await admin.client_pause(600_000, all=False)
        assert stack.sim.records[-1].outcome == "open", "paused too late to show anything"
        status, _, _ = await asyncio.wait_for(answer, 60)
        assert status == 200
        # The client has its answer while its settlement still waits for Redis.
        settlements = next(p for p in stack.runtime.chain.policies
                           if isinstance(p, RateLimitPolicy)).settlements
        await until(lambda: len(stack.access_log()) == 1, what="the answer logged")
        assert settlements.pending
        assert await admin.execute_command("CLIENT UNPAUSE")
        await admin.aclose()
        await until(lambda: not settlements.pending, what="the settlement landed")
        probe = {"model": "chat", "messages": MESSAGES, "max_tokens": 1}
        _, _, headers = await post(session, stack.url, probe)
    # The settlement landed once Redis took writes again: the bucket is exact.
    [line] = [entry for entry in stack.access_log() if entry["status"] == 200][:1]
    used = line["prompt_tokens"] + line["completion_tokens"]
    probe_reserved = reserve(CHAT, probe, 1024).total
    assert int(headers["x-ratelimit-remaining-tokens"]) == capacity - used - probe_reserved


def test_openai_sdk_retries_a_429_and_succeeds(make_stack: Any) -> None:
    stack: Stack = make_stack(with_limits(
        consumer={"requests_per_minute": 60, "burst": {"requests": 1}}))
    client = OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=3)
    client.chat.completions.create(model="chat", messages=MESSAGES)  # type: ignore[arg-type]
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.http_response.status_code == 200
    assert time.monotonic() - started > 0.5  # it waited for the bucket, as told
    assert raw.retries_taken >= 1
    no_retry = OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        no_retry.chat.completions.create(model="chat", messages=MESSAGES)  # type: ignore[arg-type]


def test_azure_inference_sdk_retries_a_429_and_succeeds(make_stack: Any) -> None:
    stack: Stack = make_stack(with_limits(
        consumer={"requests_per_minute": 60, "burst": {"requests": 1}}))
    client = ChatCompletionsClient(endpoint=stack.url + "/models", model="chat",
                                   credential=AzureKeyCredential(KEY_A))
    client.complete(messages=[UserMessage("one")])
    started = time.monotonic()
    reply = client.complete(messages=[UserMessage("two")])
    assert reply.choices[0].message.content
    assert time.monotonic() - started > 0.9  # Retry-After: 1 was honoured
    assert stack.sim.count == 2


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_redis_down_and_back(make_stack: Any, redis_server: RedisServer, on_error: str) -> None:
    stack: Stack = make_stack(with_limits(redis_server.url, on_error,
                                          consumer={"requests_per_minute": 2}))
    body = {"model": "chat", "messages": MESSAGES}
    async with aiohttp.ClientSession() as session:
        assert (await post(session, stack.url, body))[0] == 200
        redis_server.stop()
        down = [(await post(session, stack.url, body)) for _ in range(3)]
        if on_error == "open":
            assert [d[0] for d in down] == [200, 200, 200]
        else:
            assert [d[0] for d in down] == [503, 503, 503]
            assert down[0][1]["error"]["code"] == "policy_unavailable"
        redis_server.start()  # empty: the buckets start full again
        statuses: list[int] = []

        async def limited_again() -> bool:
            statuses.append((await post(session, stack.url, body))[0])
            return 429 in statuses

        await until(limited_again, what="limits enforced again", interval=0.1)
        metrics = await (await session.get(stack.url + "/metrics")).text()
    # Recovered by itself: enforcing again (two admitted, then the limit).
    assert statuses[-3:] == [200, 200, 429]
    assert "gateway_ratelimit_store_errors_total" in metrics
    assert "gateway_ratelimit_store_errors_total 0.0" not in metrics
