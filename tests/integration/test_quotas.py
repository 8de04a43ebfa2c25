"""Quotas and prices on a real gateway (in-process limits): what a consumer sees when a
quota runs out (status, code, message, Retry-After, the SDKs not retrying), the
remaining-quota headers, periods in the configured time zone (the tests pick one
where their day cannot end while they run), quotas per deployment, a quota changed
through the admin API applying at once, and costs from real usage, cached and
reasoning tokens at their own prices."""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import anthropic
import openai
import pytest

from policies.auth import hash_key
from policies.ratelimit import RateLimitPolicy
from tests.conftest import Stack, default_config
from tests.integration.test_admin_api import ADMIN_KEY
from tests.waiting import until

KEY = "metered-key"
HI = [{"role": "user", "content": "hi"}]
PRICING = {"currency": "EUR", "input_per_million": 1000, "cached_input_per_million": 500,
           "output_per_million": 2000, "reasoning_per_million": 4000}


def metered(quotas: dict[str, Any] | None = None, zone: str = "UTC",
            **consumer: Any) -> Callable[[str], dict[str, Any]]:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["quotas_timezone"] = zone
        config["deployments"][0]["pricing"] = PRICING
        config["deployments"].append(
            {"name": "claude", "model": "claude-sonnet-4-5", "provider": "Anthropic",
             "backends": [{"url": sim + "/anthropic", "api": "anthropic",
                           "auth": {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}}]})
        config["consumers"].append({"name": "metered", "api_keys": [hash_key(KEY)],
                                    "deployments": ["*"], "quotas": quotas, **consumer})
        config["admin"] = {"api_keys": {"ops": hash_key(ADMIN_KEY)}, "refresh_seconds": 0.2}
        config["ledger"] = {"flush_seconds": 0.1}
        return config
    return make


def policy(stack: Stack) -> RateLimitPolicy:
    return next(p for p in stack.runtime.chain.policies if isinstance(p, RateLimitPolicy))


async def post(stack: Stack, path: str, body: dict[str, Any], key: str = KEY,
               **headers: str) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as s, s.post(
            stack.url + path, json=body, headers={"api-key": key, **headers}) as r:
        return r.status, dict(r.headers), await r.json()


def chat_body(max_tokens: int = 10) -> dict[str, Any]:
    return {"model": "chat", "messages": HI, "max_tokens": max_tokens}


def next_midnight(zone: ZoneInfo, now: datetime.datetime | None = None) -> datetime.datetime:
    local = (now or datetime.datetime.now(datetime.UTC)).astimezone(zone)
    return (local.replace(hour=0, minute=0, second=0, microsecond=0)
            + datetime.timedelta(days=1))


def far_from_midnight() -> str:
    """A time zone where it is about noon now (a whole-hour Etc/GMT zone): a test that
    runs in it cannot see its day or month end, whenever it runs. The zone is the
    gateway's own `quotas_timezone`; no clock is swapped."""
    offset = 12 - datetime.datetime.now(datetime.UTC).hour  # -11 .. +12
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT-9 is UTC+9


def seconds_to_midnight(zone: ZoneInfo) -> float:
    return (next_midnight(zone) - datetime.datetime.now(datetime.UTC)).total_seconds()


async def test_tokens_per_day_runs_out_exactly_and_says_when_it_resets(
        make_stack: Callable[..., Stack]) -> None:
    name = far_from_midnight()
    zone = ZoneInfo(name)
    stack = make_stack(metered({"tokens_per_day": 300}, zone=name))
    used, remaining = 0, []
    while True:
        longest = seconds_to_midnight(zone)
        status, headers, body = await post(stack, "/v1/chat/completions", chat_body(),
                                           **{"x-sim-tokens": "10"})
        shortest = seconds_to_midnight(zone)
        if status != 200:
            break
        used += body["usage"]["total_tokens"]
        remaining.append(int(headers["x-quota-remaining-tokens"]))
    assert status == 429, body
    error = body["error"]
    assert error["code"] == "quota_exceeded"
    assert "tokens_per_day quota of consumer metered (300 for " in error["message"]
    midnight = next_midnight(zone)
    assert f"resets at {midnight.isoformat()}" in error["message"]
    # What was left of the day when the refusal was made (whole seconds, rounded up).
    assert math.floor(shortest) <= int(headers["Retry-After"]) <= math.ceil(longest)
    assert headers["x-should-retry"] == "false"
    # Never over; short of the quota by less than one request's reservation (prompt
    # estimate + max_tokens).
    assert used <= 300
    per_request = used // len(remaining)
    body_tokens = per_request + 10
    assert used > 300 - body_tokens, (used, per_request)
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] < body_tokens

    # The official SDK gives up at once (x-should-retry), with the code to branch on.
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=KEY, max_retries=2)
    before = len(stack.access_log())
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="chat", messages=HI, max_tokens=10)  # type: ignore[arg-type]
    assert refused.value.code == "quota_exceeded"
    assert len(stack.access_log()) == before + 1

    # Anthropic's clients get Anthropic's shape.
    claude = anthropic.Anthropic(base_url=stack.url + "/anthropic", api_key=KEY, max_retries=2)
    with pytest.raises(anthropic.RateLimitError) as refused_claude:
        claude.messages.create(model="claude", max_tokens=10, messages=HI)  # type: ignore[arg-type]
    assert refused_claude.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "tokens_per_day" in refused_claude.value.message
    assert len(stack.access_log()) == before + 2
    # (That the next day's period starts whole: tests/unit/policies/test_quotas.py, on
    # the periods' own clock argument.)


async def test_periods_follow_the_configured_time_zone(make_stack: Callable[..., Stack]) -> None:
    """The day ends at midnight where the quotas are kept, whatever the hour is in UTC
    (a zone 1 to 12 hours away from UTC, where it is about noon)."""
    name = far_from_midnight()
    zone = ZoneInfo(name)
    stack = make_stack(metered({"requests_per_day": 2}, zone=name))
    for _ in range(2):
        assert (await post(stack, "/v1/chat/completions", chat_body()))[0] == 200
    longest = seconds_to_midnight(zone)
    status, headers, body = await post(stack, "/v1/chat/completions", chat_body())
    shortest = seconds_to_midnight(zone)
    assert status == 429
    midnight = next_midnight(zone)
    assert f"resets at {midnight.isoformat()}" in body["error"]["message"]
    assert math.floor(shortest) <= int(headers["Retry-After"]) <= math.ceil(longest)


async def test_cost_per_month_with_the_deployments_prices(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(metered({"cost_per_month": 0.5}, zone=far_from_midnight()))
    spent, answers = 0.0, 0
    while True:
        status, headers, body = await post(stack, "/v1/chat/completions", chat_body(),
                                           **{"x-sim-tokens": "10"})
        if status != 200:
            break
        usage = body["usage"]
        spent += usage["prompt_tokens"] * 0.001 + usage["completion_tokens"] * 0.002
        answers += 1
        left = float(headers["x-quota-remaining-cost"])
        assert left <= 0.5 - spent + 1e-9
    assert status == 429 and "cost_per_month quota of consumer metered (0.5 for " in body[
        "error"]["message"]
    per_request = spent / answers
    assert 0.5 - per_request - 0.02 < spent <= 0.5 + 1e-9, (spent, per_request)
    # (The first of next month starting afresh: tests/unit/policies/test_quotas.py.)


async def test_quotas_by_deployment(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(metered(None, quotas_by_deployment={"embed": {"requests_per_day": 3}}))
    for _ in range(3):
        assert (await post(stack, "/v1/embeddings", {"model": "embed", "input": "x"}))[0] == 200
    status, _, body = await post(stack, "/v1/embeddings", {"model": "embed", "input": "x"})
    assert status == 429 and "on deployment embed" in body["error"]["message"]
    assert (await post(stack, "/v1/chat/completions", chat_body()))[0] == 200


async def test_a_quota_changed_through_the_admin_api_applies_at_once(
        make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(metered())

    async def admin(method: str, path: str, body: Any) -> Any:
        async with aiohttp.ClientSession() as s, s.request(
                method, stack.url + path, json=body, headers={"api-key": ADMIN_KEY}) as r:
            assert r.status < 300, await r.text()
            return await r.json()

    await admin("POST", "/admin/v1/consumers", {"name": "dyn", "deployments": ["*"],
                                                "quotas": {"requests_per_day": 100}})
    key = (await admin("POST", "/admin/v1/consumers/dyn/keys", {}))["key"]
    for _ in range(3):
        assert (await post(stack, "/v1/chat/completions", chat_body(), key=key))[0] == 200
    # Lowered to what was used: the next request is refused, the period's use is kept.
    await admin("PATCH", "/admin/v1/consumers/dyn", {"quotas": {"requests_per_day": 3}})
    status, _, body = await post(stack, "/v1/chat/completions", chat_body(), key=key)
    assert status == 429 and "(3 for " in body["error"]["message"]
    await admin("PATCH", "/admin/v1/consumers/dyn", {"quotas": {"requests_per_day": 5}})
    assert [(await post(stack, "/v1/chat/completions", chat_body(), key=key))[0]
            for _ in range(3)] == [200, 200, 429]


async def test_cost_counts_cached_and_reasoning_tokens_at_their_prices(
        make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(metered())
    headers = {"x-sim-tokens": "10", "x-sim-cached-tokens": "4", "x-sim-reasoning-tokens": "6"}
    request = {**chat_body(), "messages": [
        {"role": "user", "content": "Tell me about the weather in Paris in the spring."}]}
    status, _, body = await post(stack, "/v1/chat/completions", request, **headers)
    assert status == 200
    usage = body["usage"]
    assert usage["prompt_tokens"] > 4
    assert usage["prompt_tokens_details"]["cached_tokens"] == 4
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    expected = (prompt - 4) * 1000 + 4 * 500 + (completion - 6) * 2000 + 6 * 4000  # micros
    # Streamed, the usage comes in the last event: the same price.
    async with aiohttp.ClientSession() as s, s.post(
            stack.url + "/v1/chat/completions",
            json={**request, "stream": True, "stream_options": {"include_usage": True}},
            headers={"api-key": KEY, **headers}) as r:
        assert r.status == 200
        await r.read()

    async with aiohttp.ClientSession() as s:
        async with s.get(stack.url + "/metrics") as r:
            metrics = await r.text()
        line = next(m for m in metrics.splitlines()
                    if m.startswith('gateway_cost_total{consumer="metered",deployment="chat"}'))
        assert math.isclose(float(line.split()[-1]), 2 * expected / 1e6)

        async def both_in_the_ledger() -> Any:  # it trails by its flush interval
            async with s.get(stack.url + "/v1/usage", headers={"api-key": KEY}) as r:
                mine = await r.json()
            return mine if mine["periods"]["month"]["requests"] == 2 else None

        mine = await until(both_in_the_ledger, what="both requests in the ledger")
    month = mine["periods"]["month"]
    assert month["cost_micros"] == 2 * expected
    assert month["cached_tokens"] == 8 and month["reasoning_tokens"] == 12
    assert mine["consumer"] == "metered"


async def test_a_backends_own_prices_win_over_the_deployments(
        make_stack: Callable[..., Stack]) -> None:
    def make(sim: str) -> dict[str, Any]:
        config = metered()(sim)
        # The same deployment's one backend, dearer than the deployment's list price.
        config["deployments"][0]["backends"][0]["pricing"] = {
            "input_per_million": 3000, "output_per_million": 7000}
        return config

    stack = make_stack(make)
    status, _, body = await post(stack, "/v1/chat/completions", chat_body(),
                                 **{"x-sim-tokens": "10"})
    assert status == 200
    usage = body["usage"]
    expected = usage["prompt_tokens"] * 3000 + usage["completion_tokens"] * 7000
    async with aiohttp.ClientSession() as s, s.get(stack.url + "/metrics") as r:
        metrics = await r.text()
    line = next(m for m in metrics.splitlines()
                if m.startswith('gateway_cost_total{consumer="metered",deployment="chat"}'))
    assert math.isclose(float(line.split()[-1]), expected / 1e6)
