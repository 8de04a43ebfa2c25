"""Upstreams that do not look like the simulator's polite default: streams without a
Content-Type or a proper end, without usage, answers that are not answers, untrusted
header values, oversized and endless answers. Each gives the client the contract's
answer; none gives a 500 or a second status line inside a started stream."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.core.tokens import TOKENIZER
from gateway.simulator import SimulatorSettings
from tests.conftest import KEY_A, KEY_B, OPENAI_KEY, UPSTREAM_KEY, Stack, default_config
from tests.waiting import until

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


async def call(stack: Stack, body: dict[str, Any], fault: str | None = None,
               **headers: str) -> tuple[int, bytes, Any]:
    if fault:
        headers["x-sim-fault"] = fault
    async with aiohttp.ClientSession() as session, session.post(
            stack.url + "/v1/chat/completions", json=body, headers={"api-key": KEY_A, **headers}) as r:
        return r.status, await r.read(), r.headers


def events(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n"), raw[-80:]
    out = [block for block in raw.split(b"\n\n") if block]
    assert all(block.startswith(b"data: ") and b"\n" not in block for block in out), out
    return [block[6:] for block in out]


def two_backends(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    backend = config["deployments"][0]["backends"][0]
    config["deployments"][0]["backends"] = [{**backend, "name": "first", "priority": 0},
                                            {**backend, "name": "second", "priority": 1}]
    config["content_filters"] = {"any": [{"type": "blocklist", "terms": ["zorp"]}]}
    config["deployments"][0]["content_filter"] = "any"
    return config


@pytest.mark.parametrize("fault", ["no-content-type", "bare-done", "no-done"])
async def test_a_stream_is_relayed_as_one_however_it_is_sent(make_stack: Any, fault: str) -> None:
    # With a content filter configured and a second backend: the stream must be neither
    # turned into a 502 nor generated twice.
    stack: Stack = make_stack(two_backends)
    status, raw, headers = await call(stack, {**CHAT, "stream": True}, fault)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    data = events(raw)
    assert data[-1] == b"[DONE]" and len(data) > 10
    assert len(stack.sim.records) == 1  # generated once


async def test_a_stream_without_usage_is_counted_within_5_percent(make_stack: Any) -> None:
    sim = SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY), tokenizer="o200k_base")
    stack: Stack = make_stack(default_config, sim)
    prompt = ("Summarise the quarterly numbers: revenue rose 12.5% to $4.2bn, margins fell; "
              "国际业务增长强劲, und die Kosten stiegen. ") * 6
    body = {**CHAT, "stream": True, "messages": [
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": prompt}]}
    for n, fault in enumerate((None, "no-usage"), start=1):
        assert (await call(stack, body, fault, **{"x-sim-tokens": "300"}))[0] == 200
        # The line is written once the count is made (the first waits for the encoding).
        await until(lambda n=n: len(stack.access_log()) == n, what="the request counted")
    lines = stack.access_log()
    reported, counted = lines
    assert counted["completion_tokens"] == pytest.approx(reported["completion_tokens"], rel=0.05)
    assert counted["prompt_tokens"] == pytest.approx(reported["prompt_tokens"], rel=0.05)
    assert reported["completion_tokens"] > 250


async def test_the_tokenizer_is_loaded_when_first_needed_unless_preloaded(make_stack: Any) -> None:
    def limited(preload: bool) -> Any:
        def config(sim: str) -> dict[str, Any]:
            made = default_config(sim)
            made["server"]["preload_tokenizer"] = preload
            made["deployments"][0]["limits"] = {"tokens_per_minute": 10**6}
            return made
        return config

    lazy: Stack = make_stack(limited(False))
    assert (await call(lazy, CHAT))[0] == 200  # usage reported: nothing to count
    assert not lazy.app[TOKENIZER].loaded()  # ~70 MB not spent on an encoding never used
    assert (await call(lazy, {**CHAT, "stream": True}, "no-usage"))[0] == 200
    await until(lambda: len(lazy.access_log()) == 2, what="the stream counted")
    assert lazy.app[TOKENIZER].loaded() and lazy.access_log()[1]["completion_tokens"] > 0

    eager: Stack = make_stack(limited(True))
    # At start, before any request.
    await until(lambda: eager.app[TOKENIZER].loaded(), what="the tokenizer preloaded")
    assert eager.sim.count == 0


async def test_a_stream_without_usage_is_counted_in_its_models_encoding(make_stack: Any) -> None:
    """gpt-35-turbo and gpt-4 count with cl100k_base, later models with o200k_base
    (tiktoken's table); a deployment may name its encoding. The count of what a stream
    without usage generated is the encoding's own count of the text the client got."""
    import tiktoken

    from gateway.core.tokens import load_encoding

    def models(sim: str) -> dict[str, Any]:
        made = default_config(sim)
        made["deployments"][0]["model"] = "gpt-35-turbo"
        oss = next(d for d in made["deployments"] if d["name"] == "oss")
        oss["tokenizer"] = "cl100k_base"  # llama-3.1-8b: unknown to tiktoken, named here
        return made

    stack: Stack = make_stack(models)
    cl100k: tiktoken.Encoding = load_encoding("cl100k_base")
    o200k: tiktoken.Encoding = load_encoding("o200k_base")
    for alias, key in (("chat", KEY_A), ("oss", KEY_B)):
        async with aiohttp.ClientSession() as session, session.post(
                stack.url + "/v1/chat/completions", json={**CHAT, "model": alias, "stream": True},
                headers={"api-key": key, "x-sim-fault": "no-usage",
                         # Words the two encodings count differently (19 and 8 tokens).
                         "x-sim-chunk": "b64:" + base64.b64encode(
                             "Привет мир здравствуйте дорогие друзья".encode()).decode()}) as r:
            raw = await r.read()
        text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events(raw)[:-1] if orjson.loads(e)["choices"])
        await until(lambda a=alias: any(line["deployment"] == a for line in stack.access_log()),  # type: ignore[misc]
                    what=f"the {alias} stream counted")
        lines = [line for line in stack.access_log() if line["deployment"] == alias]
        counted = lines[0]["completion_tokens"]
        assert counted == len(cl100k.encode_ordinary(text)), alias
        assert text and len(o200k.encode_ordinary(text)) != counted  # they differ on this text


async def test_each_upstream_call_is_counted_once(make_stack: Any) -> None:
    def idle(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["deployments"][0]["backends"][0]["timeouts"] = {"idle": 0.3}
        return config

    stack: Stack = make_stack(idle)
    status, raw, _ = await call(stack, {**CHAT, "stream": True}, "stall")
    assert status == 200 and b'"upstream_timeout"' in raw
    # Counted when the call is over, which may be just after the client read the end.
    def counts() -> dict[str, float]:
        return {k[2]: v for k, v in stack.metrics.upstream_requests.values.items()}

    await until(counts, what="the stalled call counted")
    # A later call, counted in its turn: the stalled one still counts once.
    assert (await call(stack, CHAT))[0] == 200
    await until(lambda: len(counts()) == 2, what="the next call counted")
    assert counts()["stream_error"] == 1 and sum(counts().values()) == 2


async def test_a_429_passed_on_always_carries_both_retry_headers(stack: Stack) -> None:
    status, _, headers = await call(stack, CHAT, "429-retry-after", **{"x-sim-retry-after-ms": "3000"})
    assert status == 429 and headers["Retry-After"] == "3" and headers["retry-after-ms"] == "3000"


async def test_absurd_retry_values_are_clamped(make_stack: Any) -> None:
    def short(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["deployments"][0]["backends"][0]["max_cooldown_seconds"] = 0.5
        return config

    stack: Stack = make_stack(short)
    for fault in ("429-retry-inf", "hostile-headers"):
        status, _, headers = await call(stack, CHAT, fault)
        assert status == 429
        assert 0 < int(headers["retry-after-ms"]) <= 500 and headers["Retry-After"] == "1"
        assert "x-odd" not in headers and "x-ratelimit-remaining-tokens" not in headers  # Arabic digits

        async def back() -> bool:  # the backend came back, not disabled for good
            return (await call(stack, CHAT))[0] == 200

        await until(back, what="the backend back after its clamped cooldown", interval=0.1)


async def test_the_tightest_remaining_count_is_shown(make_stack: Any) -> None:
    def limited(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["deployments"][0]["limits"] = {"tokens_per_minute": 1_000_000}
        return config

    sim = SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY), remaining_tokens=5)
    stack: Stack = make_stack(limited, sim)
    status, _, headers = await call(stack, CHAT)
    assert status == 200 and headers["x-ratelimit-remaining-tokens"] == "5"


@pytest.mark.parametrize(("fault", "status", "text"), [
    ("string-error", 500, "The server had an error"),
    ("text-error", 502, "502 Bad Gateway"),
    ("error-200", 502, "error instead of an answer"),
    ("not-object", 502, "not a JSON object"),
    ("redirect", 502, "HTTP 302"),
    ("204", 502, "HTTP 204"),
    ("status-999", 502, "HTTP 999"),
])
async def test_answers_that_are_not_answers(stack: Stack, fault: str, status: int, text: str) -> None:
    got, raw, headers = await call(stack, CHAT, fault)
    assert got == status and headers["Content-Type"].startswith("application/json")
    error = json.loads(raw)["error"]
    assert text in error["message"] and error["code"]


async def test_size_limits_while_reading(make_stack: Any) -> None:
    def small(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["server"].update(max_response_bytes=1_000_000, max_event_bytes=100_000)
        return config

    stack: Stack = make_stack(small)
    status, raw, _ = await call(stack, CHAT, "oversized", **{"x-sim-size": "2000000"})
    assert status == 502 and b"larger than the 1000000 bytes" in raw
    for fault, words in (("long-line", b"longer than 100000"), ("endless", b"larger than the 1000000")):
        status, raw, _ = await call(stack, {**CHAT, "stream": True}, fault)
        assert status == 200 and words in events(raw)[-1]


@pytest.mark.parametrize("fault", ["not-object-event", "garbage-event", "not-object"])
async def test_a_bad_event_ends_the_stream_with_an_error_event(stack: Stack, fault: str) -> None:
    status, raw, _ = await call(stack, {**CHAT, "stream": True}, fault)
    assert status == 200 and raw.count(b"HTTP/1.1") == 0
    last = json.loads(events(raw)[-1])
    assert last["error"]["code"] == "upstream_error"


async def test_client_errors_do_not_open_the_breaker(make_stack: Any) -> None:
    def touchy(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["deployments"][0]["routing"] = {"breaker": {"failures": 2}}
        return config

    stack: Stack = make_stack(touchy)
    for _ in range(4):
        assert (await call(stack, CHAT, "400"))[0] == 400
    assert (await call(stack, CHAT))[0] == 200
    for _ in range(2):
        await call(stack, CHAT, "500")
    status, raw, _ = await call(stack, CHAT)
    assert status == 503 and b"no_healthy_backend" in raw  # backend failures do open it


async def test_a_long_stream_without_usage_is_counted_exactly_as_it_streams(make_stack: Any) -> None:
    """A stream without usage longer than the text the gateway holds (HOLD_BYTES): its
    pieces are counted as they pile up and let go, and the count is still the count of
    every piece the client got."""
    from gateway.core.tokens import load_encoding
    from gateway.enforcement.accounting import HOLD_BYTES

    stack: Stack = make_stack(default_config)
    piece = "The gateway counts what it relays, piece by piece, as it streams. " * 16
    chunks = 2 * HOLD_BYTES // len(piece) + 100  # the text held, let go twice over
    async with aiohttp.ClientSession() as session, session.post(
            stack.url + "/v1/chat/completions", json={**CHAT, "stream": True},
            headers={"api-key": KEY_A, "x-sim-fault": "no-usage", "x-sim-chunks": str(chunks),
                     "x-sim-token-ms": "0",
                     "x-sim-chunk": "b64:" + base64.b64encode(piece.encode()).decode()}) as r:
        raw = await r.read()
    texts = [orjson.loads(e)["choices"][0]["delta"].get("content") or ""
             for e in events(raw)[:-1] if orjson.loads(e)["choices"]]
    assert len(texts) >= chunks and sum(map(len, texts)) > 2 * HOLD_BYTES
    await until(lambda: len(stack.access_log()) == 1, what="the stream counted")
    o200k = load_encoding("o200k_base")
    assert stack.access_log()[0]["completion_tokens"] == sum(
        len(o200k.encode_ordinary(t)) for t in texts)
