"""Defects of issue #21 in the request path, each with the test that failed before its
fix: a malformed field with filters on, gzip that is not gzip, a GPT-3.5 stream counted
in its own encoding, a large answer costing a small multiple of its size."""
from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.simulator import SimulatorSettings
from tests.conftest import KEY_A, OPENAI_KEY, UPSTREAM_KEY, Stack, default_config
from tests.integration.test_hostile_input import filtered

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_number_where_tools_belong_is_answered_as_without_content_filters(
        make_stack: Any) -> None:
    """`tools: 1` on a deployment with content filters gets what it gets on one without
    (the same upstream): not the filters' 503."""
    stack: Stack = make_stack(filtered)
    statuses = {}
    async with aiohttp.ClientSession() as session:
        for alias in ("chat", "oss"):  # filtered, not filtered
            async with session.post(stack.url + "/v1/chat/completions",
                                    json={**CHAT, "model": alias, "tools": 1},
                                    headers={"api-key": "key-team-b"}) as r:
                statuses[alias] = (r.status, (await r.json()).get("error", {}).get("code"))
    assert statuses["chat"] == statuses["oss"], statuses


async def test_gzip_that_is_not_gzip_is_one_clean_400(stack: Stack,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as session, session.post(
            stack.url + "/v1/chat/completions", data=b'{"model": "chat", "messages": []}',
            headers={"api-key": KEY_A, "Content-Type": "application/json",
                     "Content-Encoding": "gzip"}) as r:
        status, body = r.status, await r.json(content_type=None)
    assert status == 400 and body["error"]["code"] == "invalid_request", body
    # aiohttp logs its traceback once the connection's handler is done, which may be just
    # after the answer: the request's access-log line (written last) comes first.
    from tests.waiting import until
    await until(lambda: len(stack.access_log()) == 1, what="the request logged")
    await until(lambda: [rec for rec in caplog.records if rec.exc_info] or stack.run(_later()),
                what="the handler done")
    assert not [rec for rec in caplog.records if rec.exc_info], "a traceback was logged"


async def _later() -> bool:
    """True once the gateway's loop has run its pending callbacks a few times over."""
    for _ in range(10):
        await asyncio.sleep(0)
    return True


async def test_expect_100_continue_with_a_bad_key_gets_the_401_before_the_body(
        stack: Stack) -> None:
    """Issue #21 reports the connection closed unanswered here (found by the fuzz through
    `requests`); sent by hand, as below, the 401 comes (in process and in a real
    process alike): kept as the behaviour to hold, not marked as failing."""
    port = int(stack.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\napi-key: wrong\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 60\r\n"
                 b"Expect: 100-continue\r\n\r\n")
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except asyncio.IncompleteReadError as err:
        head = err.partial
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 401"), head  # the body was never sent


def gpt35(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    config["deployments"][0]["model"] = "gpt-35-turbo"
    return config



async def test_a_gpt35_stream_without_usage_is_counted_with_its_own_encoding(make_stack: Any) -> None:
    """The upstream (a GPT-3.5 model: cl100k_base) streams one token per event; without
    its usage, the gateway's count must be the model's own, exactly."""
    sim = SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY), tokenizer="cl100k_base")
    stack: Stack = make_stack(gpt35, sim)
    reply = "Das Wetter in Zürich: 12,5 °C, 国际 ok; naïve café—über alles!! " * 4
    headers = {"api-key": KEY_A, "x-sim-reply": reply}
    async with aiohttp.ClientSession() as session:
        for fault in (None, "no-usage"):
            async with session.post(stack.url + "/v1/chat/completions", json={
                    **CHAT, "stream": True, "stream_options": {"include_usage": True}},
                    headers={**headers, **({"x-sim-fault": fault} if fault else {})}) as r:
                assert r.status == 200
                await r.read()
    from tests.waiting import until
    await until(lambda: len(stack.access_log()) == 2, what="both streams counted")
    reported, counted = stack.access_log()
    assert counted["completion_tokens"] == reported["completion_tokens"]


def metrics_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text: str = response.read().decode()
    return "\n".join(line for line in text.splitlines() if line.startswith("gateway_tokens_total")
                     and 'type="completion"' in line).replace('type="completion"', '"completion_tokens"')


def test_a_large_answer_costs_a_small_multiple_of_its_size(
        tmp_path: Path, background: list[Any], upstream_keys: None) -> None:
    """An upstream answers a non-streamed chat completion of 8 MB (one long text without
    spaces, no usage): the client gets it whole, and the gateway's peak memory grows by
    less than 10 times the answer's size."""
    import json
    import urllib.request

    from tests.conftest import start_gateway, start_simulator

    sim = start_simulator(background)
    config = default_config(sim)
    config["deployments"][0]["backends"][0].pop("auth")
    config["server"]["max_response_bytes"] = 64 << 20
    url, proc = start_gateway(config, tmp_path, background)

    def peak_mb() -> float:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    # A small answer without usage first: the encoding (tens of MB, loaded once per process
    # when a count first needs it) is then in memory, and what is measured is the answer's
    # own cost.
    warm = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(CHAT).encode(),
                                  headers={"api-key": KEY_A, "Content-Type": "application/json",
                                           "x-sim-fault": "no-usage"})
    with urllib.request.urlopen(warm, timeout=300) as response:
        response.read()
    from tests.waiting import wait_for

    wait_for(lambda: '"completion_tokens"' in metrics_text(url), what="the small answer counted")
    before = peak_mb()
    piece = "x" * 4000
    request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(CHAT).encode(),
                                     headers={"api-key": KEY_A, "Content-Type": "application/json",
                                              "x-sim-chunk": "b64:" + base64.b64encode(
                                                  piece.encode()).decode(),
                                              "x-sim-chunks": "2000", "x-sim-fault": "no-usage"})
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.loads(response.read())
    assert len(answer["choices"][0]["message"]["content"]) == 8_000_000
    assert peak_mb() - before < 10 * 8, (before, peak_mb())
