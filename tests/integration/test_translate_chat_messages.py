"""Chat Completions <-> Anthropic Messages through the gateway, with the real SDKs on
loopback: the openai SDK on a Claude alias (a full tool loop streamed and not, parallel
calls, tool_choice, cache breakpoints, extended thinking in a two-turn tool loop whose
blocks the simulator checks), the anthropic SDK on chat-only aliases (messages.stream
with tool use, from recorded chat streams), failover from an Anthropic backend to a
chat one and back, upstream errors raised as each SDK's own exceptions, refusals, and
settlement of translated streams and aborts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from aiohttp import web
from anthropic import Anthropic
from openai import OpenAI

from gateway.simulator import SIMULATOR, Fault, SimulatorSettings, create_simulator
from gateway.simulator.app import chat_problem
from tests.conftest import KEY_A, OPENAI_KEY, UPSTREAM_KEY, Stack, serve_in_thread
from tests.integration.test_anthropic_api import with_claude
from tests.waiting import until

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "contract"
KEY = {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}
STOCK = {"type": "function", "function": {
    "name": "get_stock", "description": "A share price.",
    "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}}}}
ASK: list[Any] = [{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Weather in Paris?"}]


def translated(sim: str) -> dict[str, Any]:
    config = with_claude(sim)
    config["consumers"][0]["deployments"] += ["mistral", "oss"]
    return config


def openai_client(stack: Stack, retries: int = 0) -> OpenAI:
    return OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=retries)


def anthropic_client(stack: Stack) -> Anthropic:
    return Anthropic(base_url=stack.url, api_key=KEY_A, max_retries=0)


def sent(stack: Stack) -> dict[str, Any]:
    """The body of the last request the simulator got."""
    body: dict[str, Any] = stack.sim.records[-1].body
    return body


# --- a chat client on a Claude alias --------------------------------------------------------
@pytest.mark.parametrize("streamed", [False, True])
def test_openai_sdk_full_tool_loop_on_a_claude_alias(make_stack: Any, streamed: bool) -> None:
    stack: Stack = make_stack(translated)
    c = openai_client(stack)

    def ask(messages: list[Any]) -> Any:
        if not streamed:
            return c.chat.completions.create(model="claude-sonnet-4-5", messages=messages, tools=[WEATHER])
        with c.chat.completions.stream(model="claude-sonnet-4-5", messages=messages, tools=[WEATHER],
                                       stream_options={"include_usage": True}) as stream:
            return stream.get_final_completion()

    first = ask(ASK)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id.startswith("toolu_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris, France"}
    assert first.usage.completion_tokens > 0
    body = sent(stack)
    assert stack.sim.records[-1].path == "/anthropic/v1/messages"
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["max_tokens"] == 1024  # the deployment's default_max_tokens
    assert body["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]  # type: ignore[index]

    second = ask([*ASK, choice.message, {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21C"}])
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    body = sent(stack)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"][-1] == {"type": "tool_use", "id": call.id, "name": "get_weather",
                                                  "input": {"location": "Paris, France"}}
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": "Sunny, 21C"}]


def test_parallel_tool_calls_tool_choice_and_cache_breakpoints(make_stack: Any) -> None:
    stack: Stack = make_stack(translated)
    c = openai_client(stack)
    both = c.chat.completions.create(model="claude-sonnet-4-5", messages=ASK, tools=[WEATHER, STOCK])
    calls = both.choices[0].message.tool_calls
    assert [t.function.name for t in calls] == ["get_weather", "get_stock"]
    assert len({t.id for t in calls}) == 2
    one = c.chat.completions.create(model="claude-sonnet-4-5", messages=ASK, tools=[WEATHER, STOCK],
                                    parallel_tool_calls=False, tool_choice="required")
    assert len(one.choices[0].message.tool_calls) == 1
    assert sent(stack)["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    named = c.chat.completions.create(model="claude-sonnet-4-5", messages=ASK, tools=[WEATHER, STOCK],
                                      tool_choice={"type": "function", "function": {"name": "get_stock"}})
    assert [t.function.name for t in named.choices[0].message.tool_calls] == ["get_stock"]
    none = c.chat.completions.create(model="claude-sonnet-4-5", messages=ASK, tools=[WEATHER],
                                     tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"

    # A cache breakpoint on a content part reaches Claude; the cached part of the prompt
    # comes back once, within prompt_tokens, and the gateway counts it once.
    marked = [{"role": "system", "content": [{"type": "text", "text": "A long shared preamble of rules.",
                                              "cache_control": {"type": "ephemeral"}}]},
              {"role": "user", "content": "Hello there"}]
    cached = c.chat.completions.create(model="claude-sonnet-4-5", messages=marked)  # type: ignore[arg-type]
    assert sent(stack)["system"][0]["cache_control"] == {"type": "ephemeral"}
    usage = cached.usage
    assert usage.prompt_tokens == 8 and usage.prompt_tokens_details.cached_tokens == 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert stack.access_log()[-1]["prompt_tokens"] == 8


@pytest.mark.parametrize("streamed", [False, True])
def test_extended_thinking_in_a_two_turn_tool_loop(make_stack: Any, streamed: bool) -> None:
    stack: Stack = make_stack(translated)
    c = openai_client(stack)
    ask: dict[str, Any] = {"model": "claude-sonnet-4-5", "tools": [WEATHER], "reasoning_effort": "low",
                           "max_completion_tokens": 4096}

    def create(messages: list[Any]) -> Any:
        if not streamed:
            return c.chat.completions.create(messages=messages, **ask)
        with c.chat.completions.stream(messages=messages, **ask) as stream:
            return stream.get_final_completion()

    first = create(ASK)
    message = first.choices[0].message
    blocks = message.model_extra["thinking_blocks"]
    assert [b["type"] for b in blocks] == ["thinking"] and blocks[0]["signature"]
    assert message.model_extra["reasoning_content"] == blocks[0]["thinking"]
    assert sent(stack)["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    result = {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "Sunny"}
    answer = create([*ASK, message, result])
    assert answer.choices[0].finish_reason == "stop"
    # The blocks went back to Claude first in the assistant turn, as Claude signed them.
    back = sent(stack)["messages"][1]["content"][0]
    assert back == {k: v for k, v in blocks[0].items() if k != "index"}

    # Altered or dropped on the way back, Claude refuses them: so does the simulator.
    altered = message.model_dump()
    altered["thinking_blocks"] = [{**back, "thinking": back["thinking"] + " (edited)"}]
    with pytest.raises(openai.BadRequestError) as bad:
        create([*ASK, altered, result])
    assert "Invalid `signature`" in bad.value.message
    dropped = {k: v for k, v in message.model_dump().items() if k != "thinking_blocks"}
    with pytest.raises(openai.BadRequestError) as missing:
        create([*ASK, dropped, result])
    assert "must start with a thinking block" in missing.value.message


def test_what_cannot_map_is_refused_naming_the_field(make_stack: Any) -> None:
    stack: Stack = make_stack(translated)
    c = openai_client(stack)
    for extra, field in [({"n": 2}, "n"), ({"logprobs": True}, "logprobs"),
                         ({"modalities": ["text", "audio"]}, "modalities"),
                         ({"response_format": {"type": "json_schema", "json_schema": {
                             "name": "x", "schema": {"type": "object"}}}}, "response_format")]:
        with pytest.raises(openai.BadRequestError) as err:
            c.chat.completions.create(model="claude-sonnet-4-5", messages=ASK, **extra)  # type: ignore[call-overload]
        assert err.value.code == "unsupported_parameter" and err.value.param == field
        assert "claude-sonnet-4-5" in err.value.message
    a = anthropic_client(stack)
    with pytest.raises(anthropic.BadRequestError) as refused:
        a.messages.create(model="chat", max_tokens=64, extra_body={"top_k": 5},
                          messages=[{"role": "user", "content": "hi"}])
    assert "top_k" in refused.value.message
    with pytest.raises(anthropic.BadRequestError):
        a.messages.create(model="chat", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
                          tools=[{"type": "web_search_20250305", "name": "web_search"}])  # type: ignore[list-item]
    assert stack.sim.count == 0  # nothing reached an upstream


# --- an Anthropic client on chat-only aliases ----------------------------------------------
def recorded_upstream(seen: list[dict[str, Any]]) -> web.Application:
    """An OpenAI-compatible upstream that answers with recorded chat streams
    (tests/fixtures/contract): one tool call, two when two tools are offered in parallel,
    and after a tool result a text answer; it refuses what OpenAI refuses."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body)
        if problem := chat_problem(body):
            return web.json_response({"error": {"message": problem, "type": "invalid_request_error"}},
                                     status=400)
        if body["messages"][-1]["role"] == "tool":
            name = "azure-openai-chat-stream.sse"
        elif len(body.get("tools") or []) > 1 and body.get("parallel_tool_calls") is not False:
            name = "chat-completions-stream-parallel-tool-calls.sse"
        else:
            name = "chat-completions-stream-tool-calls.sse"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write((RECORDED / name).read_bytes())
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    return app


def with_recorded(url: str) -> Callable[[str], dict[str, Any]]:
    def make(sim: str) -> dict[str, Any]:
        config = translated(sim)
        config["deployments"].append({"name": "recorded", "model": "gpt-4o", "backends": [
            {"url": url + "/v1", "provider": "openai"}]})
        config["consumers"][0]["deployments"].append("recorded")
        return config
    return make


GET_WEATHER = {"name": "GetWeatherArgs", "description": "Weather in a city.", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"},
                                     "units": {"type": "string"}}}}
GET_STOCK = {"name": "get_stock_price", "input_schema": {"type": "object", "properties": {
    "ticker": {"type": "string"}, "exchange": {"type": "string"}}}}


def test_anthropic_sdk_stream_with_tool_use_on_a_chat_alias(make_stack: Any) -> None:
    seen: list[dict[str, Any]] = []
    with serve_in_thread(recorded_upstream(seen)) as url:
        stack: Stack = make_stack(with_recorded(url))
        c = anthropic_client(stack)
        messages: list[Any] = [{"role": "user", "content": "Weather in Edinburgh?"}]
        with c.messages.stream(model="recorded", max_tokens=256, tools=[GET_WEATHER],  # type: ignore[list-item]
                               system="Use the tools.", messages=messages) as stream:
            kinds = [e.type for e in stream]
            final = stream.get_final_message()
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and kinds[-2] == "message_delta"
        assert kinds[1] == "content_block_start" and kinds[-3] == "content_block_stop"
        assert final.stop_reason == "tool_use"
        use = final.content[-1]
        assert use.type == "tool_use" and use.id == "call_c91SqDXlYFuETYv8mUHzz6pp"  # the id kept
        assert use.input == {"city": "Edinburgh", "country": "UK", "units": "c"}
        assert (final.usage.input_tokens, final.usage.output_tokens) == (76, 24)  # the backend's own
        assert seen[-1]["stream_options"] == {"include_usage": True}
        assert seen[-1]["messages"][0] == {"role": "system", "content": "Use the tools."}
        assert seen[-1]["tools"][0]["function"]["parameters"] == GET_WEATHER["input_schema"]

        messages += [{"role": "assistant", "content": final.content},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                   "content": "12C and raining"}]}]
        with c.messages.stream(model="recorded", max_tokens=256, tools=[GET_WEATHER],  # type: ignore[list-item]
                               messages=messages) as stream:
            text = "".join(stream.text_stream)
            answer = stream.get_final_message()
        assert answer.stop_reason == "end_turn" and text.startswith("Ah")
        assert [m["role"] for m in seen[-1]["messages"]] == ["user", "assistant", "tool"]
        assert seen[-1]["messages"][2] == {"role": "tool", "tool_call_id": use.id,
                                           "content": "12C and raining"}

        with c.messages.stream(model="recorded", max_tokens=256, tools=[GET_WEATHER, GET_STOCK],  # type: ignore[list-item]
                               messages=messages[:1]) as stream:
            both = stream.get_final_message()
        assert [(b.name, b.id) for b in both.content if b.type == "tool_use"] == [
            ("GetWeatherArgs", "call_JMW1whyEaYG438VE1OIflxA2"),
            ("get_stock_price", "call_DNYTawLBoN8fj3KN6qU9N1Ou")]
        assert both.content[1].input == {"ticker": "AAPL", "exchange": "NASDAQ"}  # type: ignore[union-attr]


@pytest.mark.parametrize("alias", ["chat", "mistral", "oss"])
def test_anthropic_sdk_on_chat_only_aliases(make_stack: Any, alias: str) -> None:
    stack: Stack = make_stack(translated)
    c = anthropic_client(stack)
    hello = [{"role": "user", "content": "Hello there"}]
    with c.messages.stream(model=alias, max_tokens=64, system="Be brief.", messages=hello) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text and final.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 16)
    assert sent(stack)["messages"][0] == {"role": "system", "content": "Be brief."}
    whole = c.messages.create(model=alias, max_tokens=5, messages=hello)  # type: ignore[arg-type]
    assert whole.stop_reason == "max_tokens" and whole.usage.output_tokens == 5


# --- failover across APIs, errors ----------------------------------------------------------
@pytest.mark.parametrize("fault", ["429", "529"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_failover_from_an_anthropic_backend_to_a_chat_one(make_stack: Any, fault: str, client: str) -> None:
    failing = create_simulator(SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY),
                                                 faults=[Fault(kind=fault, every=1)]))
    with serve_in_thread(failing) as failing_url:
        def config(sim: str) -> dict[str, Any]:
            made = translated(sim)
            made["deployments"].append({"name": "claude-both", "model": "claude-sonnet-4-5", "backends": [
                {"url": failing_url + "/anthropic", "provider": "anthropic", "priority": 0, "auth": KEY},
                {"url": sim + "/v1", "provider": "openai", "model": "gpt-4o-mini", "priority": 1,
                 "auth": {"type": "api-key", "key_env": "TEST_OPENAI_KEY"}}]})
            made["consumers"][0]["deployments"].append("claude-both")
            return made

        stack: Stack = make_stack(config)
        if client == "openai":
            reply = openai_client(stack).chat.completions.create(model="claude-both", messages=ASK)
            assert reply.choices[0].message.content
        else:
            message = anthropic_client(stack).messages.create(
                model="claude-both", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
            assert message.content[0].text  # type: ignore[union-attr]
    # The first backend was asked in its own API (translated or native) and refused.
    first = failing[SIMULATOR].records[-1]
    assert first.path == "/anthropic/v1/messages" and first.outcome == f"fault:{fault}"
    assert first.body["max_tokens"] > 0 and first.body["messages"][-1]["role"] == "user"
    assert stack.sim.records[-1].path == "/v1/chat/completions"
    assert stack.sim.records[-1].body["model"] == "gpt-4o-mini"
    assert stack.access_log()[-1]["status"] == 200


def test_upstream_errors_reach_an_openai_client_as_its_own_exceptions(make_stack: Any) -> None:
    stack: Stack = make_stack(translated)
    c = openai_client(stack)
    cases: list[tuple[str, type[Exception]]] = [("400", openai.BadRequestError),
                                               ("529", openai.InternalServerError),
                                               ("429", openai.RateLimitError)]  # last: it cools down
    for fault, kind in cases:
        with pytest.raises(kind) as err:
            c.chat.completions.create(model="claude-sonnet-4-5", messages=ASK,
                                      extra_headers={"x-sim-fault": fault})
        assert err.value.status_code == int(fault)  # type: ignore[attr-defined]
        assert "The upstream answered HTTP" in err.value.message  # type: ignore[attr-defined]
    headers = err.value.response.headers  # type: ignore[attr-defined]
    assert int(headers["retry-after"]) >= 1 and int(headers["retry-after-ms"]) == 2000


def test_upstream_errors_reach_an_anthropic_client_as_its_own_exceptions(make_stack: Any) -> None:
    stack: Stack = make_stack(translated)
    c = anthropic_client(stack)
    cases: list[tuple[str, type[Exception]]] = [("400", anthropic.BadRequestError),
                                               ("529", anthropic.OverloadedError),
                                               ("429", anthropic.RateLimitError)]
    for fault, kind in cases:
        with pytest.raises(kind) as err:
            c.messages.create(model="chat", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
                              extra_headers={"x-sim-fault": fault})
        assert err.value.body["type"] == "error"  # type: ignore[attr-defined,index]
    headers = err.value.response.headers  # type: ignore[attr-defined]
    assert int(headers["retry-after"]) >= 1 and int(headers["retry-after-ms"]) == 2000
    # A stream refused before its first byte is refused the same way.
    with pytest.raises(anthropic.RateLimitError):
        c.messages.create(model="mistral", max_tokens=64, stream=True, extra_headers={"x-sim-fault": "429"},
                          messages=[{"role": "user", "content": "hi"}])


def test_the_sdks_retry_what_they_would_on_a_native_backend(make_stack: Any) -> None:
    sim = SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY), retry_after_ms=100,
                            faults=[Fault(kind="529", every=2)])
    stack: Stack = make_stack(translated, sim)
    c = openai_client(stack, retries=2)
    c.chat.completions.create(model="claude-sonnet-4-5", messages=ASK)
    assert c.chat.completions.create(model="claude-sonnet-4-5", messages=ASK).choices[0].message.content
    assert [r.outcome for r in stack.sim.records] == ["complete", "fault:529", "complete"]


# --- limits -----------------------------------------------------------------------------------
CAPACITY = 100_000
REPLY = " ".join(f"word{i}" for i in range(16))


def limited(sim: str) -> dict[str, Any]:
    config = translated(sim)
    config["consumers"][0]["limits"] = {"tokens_per_minute": 1, "burst": {"tokens": CAPACITY}}
    return config


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                **headers: str) -> tuple[int, bytes, Any]:
    async with session.post(url, json=body, headers={"api-key": KEY_A, "x-sim-reply": REPLY,
                                                     **headers}) as r:
        return r.status, await r.read(), r.headers


@pytest.mark.parametrize("client", ["chat", "messages"])
async def test_settlement_is_exact_for_translated_streams_and_aborts(make_stack: Any, client: str) -> None:
    stack: Stack = make_stack(limited)
    if client == "chat":  # a chat client on Claude
        url = stack.url + "/v1/chat/completions"
        body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 100,
                                "messages": [{"role": "user", "content": "Hello there"}]}
    else:  # an Anthropic client on a chat deployment
        url = stack.url + "/v1/messages"
        body = {"model": "chat", "max_tokens": 100, "messages": [{"role": "user", "content": "Hello there"}]}
    async with aiohttp.ClientSession() as session:
        for streamed in (False, True):
            status, _, _ = await _post(session, url, {**body, "stream": streamed})
            assert status == 200
        # A client that leaves in the middle of a slow translated stream.
        r = await session.post(url, json={**body, "stream": True},
                               headers={"api-key": KEY_A, "x-sim-reply": REPLY, "x-sim-token-ms": "80"})
        seen = await r.content.readuntil(b"word1")
        r.close()
        await until(lambda: any(line["status"] == 499 for line in stack.access_log()),
                    what="the aborted request's settlement")
        status, _, headers = await _post(session, url, {**body, "stream": False})
    plain, streamed_line, aborted, _probe = [line for line in stack.access_log()
                                             if line["status"] in (200, 499)]
    for line in (plain, streamed_line):
        # The backend's own counts: its words of "Hello there", its 16 tokens of reply.
        assert (line["prompt_tokens"], line["completion_tokens"]) == (2, 16), line
    assert aborted["status"] == 499 and 0 < aborted["completion_tokens"] < 16
    if client == "messages":
        # What message_start told the client is what was settled for the prompt.
        start = json.loads(seen.split(b"data: ", 1)[1].split(b"\n", 1)[0])
        assert aborted["prompt_tokens"] == start["message"]["usage"]["input_tokens"]
    used = sum(line["prompt_tokens"] + line["completion_tokens"] for line in (plain, streamed_line, aborted))
    # The probe's reservation (its prompt estimate plus its max tokens), not yet settled:
    # everything before it was settled at exactly what the log says.
    probe_reserved = CAPACITY - used - int(headers["x-ratelimit-remaining-tokens"])
    assert 100 < probe_reserved < 200
