"""Chat and Anthropic clients on models served only on the Responses API (codex-mini,
gpt-5-pro and the like: `backends[].apis: [responses]`), through the gateway and the
simulator, with the official openai and anthropic SDKs: plain and streamed, a tool through
a full loop, count_tokens answered by the gateway in the model's tokenizer, and the
upstream's 429 and 400 as each SDK's own exception."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import orjson
import pytest
import tiktoken.model
from anthropic import Anthropic
from openai import OpenAI
from pydantic import ValidationError

from gateway.config.models import BackendConfig
from gateway.core.tokens import load_encoding
from tests.conftest import KEY_B, OPENAI_KEY, Stack, default_config

OPENAI_AUTH = {"type": "api-key", "key_env": "TEST_OPENAI_KEY"}
AZURE_AUTH = {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}
CHAT_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}
CLAUDE_TOOL = {"name": "get_weather", "description": "Current weather.",
               "input_schema": CHAT_TOOL["function"]["parameters"]}  # type: ignore[index]


def with_responses_only(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    config["deployments"] += [
        # OpenAI's API, which serves chat too: narrowed to what the model is served on.
        {"name": "gpt-5-pro", "model": "gpt-5-pro", "backends": [
            {"url": sim + "/v1", "provider": "openai", "apis": ["responses"], "auth": OPENAI_AUTH}]},
        # Azure's, on the resource's v1 Responses route.
        {"name": "codex-mini", "model": "codex-mini", "backends": [
            {"url": sim, "provider": "azure-openai", "deployment": "codex-mini-east",
             "apis": ["responses"], "auth": AZURE_AUTH}]},
        # Chat only, on a model whose tokenizer is not the default one.
        {"name": "gpt-4-chat", "model": "gpt-4", "backends": [
            {"url": sim + "/v1", "provider": "openai", "apis": ["chat/completions"], "auth": OPENAI_AUTH}]},
    ]
    return config


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    made: Stack = make_stack(with_responses_only)
    return made


def chat_client(stack: Stack) -> OpenAI:
    return OpenAI(base_url=stack.url + "/v1", api_key=KEY_B, max_retries=0)


def claude_client(stack: Stack) -> Anthropic:
    return Anthropic(base_url=stack.url, api_key=KEY_B, max_retries=0)


def test_apis_narrows_a_backend_and_is_checked_against_its_provider() -> None:
    base = {"url": "http://h/v1", "provider": "openai"}
    with pytest.raises(ValidationError, match="names messages, which provider openai does not serve"):
        BackendConfig(**base, apis=["messages"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        BackendConfig(**base, apis=[])  # type: ignore[arg-type]


def test_a_responses_only_backend_is_reached_only_through_translation(stack: Stack) -> None:
    listed = chat_client(stack).models.retrieve("gpt-5-pro").model_dump()
    serves = {s["api"]: s["how"] for s in listed["serves"]}
    assert serves == {"chat.completions": "translated", "responses": "native",
                      "responses.compact": "translated", "messages": "translated"}
    reply = chat_client(stack).chat.completions.create(
        model="gpt-5-pro", messages=[{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"
    sent = stack.sim.records[-1]
    assert sent.path == "/v1/responses" and sent.authorization == f"Bearer {OPENAI_KEY}"
    assert sent.body["instructions"] == "Be brief." and sent.body["store"] is False
    assert sent.body["input"] == [{"type": "message", "role": "user", "content": "Hello"}]
    assert not stack.sim.store.responses  # the backend was told to keep nothing
    assert not [r for r in stack.sim.records if "chat/completions" in r.path]
    # The Responses API itself still goes through as it came.
    native = chat_client(stack).responses.create(model="gpt-5-pro", input="Hi", store=False)
    assert native.output_text and stack.sim.records[-1].body["input"] == "Hi"
    # What it does not serve and nothing translates stays refused.
    with pytest.raises(openai.BadRequestError) as refused:
        chat_client(stack).completions.create(model="gpt-5-pro", prompt="Hi")
    assert refused.value.code == "unsupported_operation"


def test_openai_chat_with_a_tool_through_a_full_loop(stack: Stack) -> None:
    client = chat_client(stack)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="codex-mini", messages=messages, tools=[CHAT_TOOL],
                                           max_completion_tokens=200)
    assert first.choices[0].finish_reason == "tool_calls"
    call = (first.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert orjson.loads(call.function.arguments) == {"location": "New York City"}  # type: ignore[union-attr]
    sent = stack.sim.records[-1]
    assert sent.path == "/openai/v1/responses" and sent.body["model"] == "codex-mini-east"
    assert sent.body["tools"][0]["name"] == "get_weather" and sent.body["max_output_tokens"] == 200
    usage = first.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}]
    second = client.chat.completions.create(model="codex-mini", messages=messages, tools=[CHAT_TOOL])
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    items = stack.sim.records[-1].body["input"]
    assert [i["type"] for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1]["call_id"] == items[2]["call_id"] == call.id
    # Settled from the backend's own usage: the access log says what the client was told.
    line = stack.logged(2)[-1]
    assert second.usage is not None and line["prompt_tokens"] == second.usage.prompt_tokens


def test_openai_chat_streamed_with_a_tool_through_a_full_loop(stack: Stack) -> None:
    client = chat_client(stack)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with client.chat.completions.stream(model="gpt-5-pro", messages=messages, tools=[CHAT_TOOL],  # type: ignore[list-item]
                                        stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
        first = stream.get_final_completion()
    call = (first.choices[0].message.tool_calls or [])[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    deltas = [e for e in chunks if e.type == "tool_calls.function.arguments.delta"]
    assert len(deltas) > 1  # the arguments came in pieces, as the backend streamed them
    assert first.usage is not None and first.usage.completion_tokens > 0
    messages += [{"role": "assistant", "tool_calls": [
                     {"id": call.id, "type": "function",
                      "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
                 {"role": "tool", "tool_call_id": call.id, "content": "Sunny"}]
    raw = list(client.chat.completions.create(model="gpt-5-pro", messages=messages, tools=[CHAT_TOOL],  # type: ignore[call-overload]
                                              stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in raw if c.choices)
    assert text and raw[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in raw)  # not asked for: the gateway's usage chunk removed
    line = stack.logged(2)[-1]
    assert line["stream"] is True and line["completion_tokens"] > 0
    assert stack.sim.records[-1].body["input"][-1]["call_id"] == call.id


def test_anthropic_messages_create_with_tool_use(stack: Stack) -> None:
    client = claude_client(stack)
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.messages.create(model="gpt-5-pro", max_tokens=256, system="Be brief.",
                                   tools=[CLAUDE_TOOL], messages=history)  # type: ignore[list-item]
    assert first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert tool_use.input == {"location": "New York City"}  # type: ignore[union-attr]
    sent = stack.sim.records[-1]
    assert sent.path == "/v1/responses" and sent.body["instructions"] == "Be brief."
    history += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id,  # type: ignore[union-attr]
                                              "content": "Sunny"}]}]
    second = client.messages.create(model="gpt-5-pro", max_tokens=256, tools=[CLAUDE_TOOL],  # type: ignore[list-item]
                                    messages=history)
    assert second.stop_reason == "end_turn" and second.content[0].text  # type: ignore[union-attr]
    items = stack.sim.records[-1].body["input"]
    assert items[-1] == {"type": "function_call_output", "call_id": tool_use.id, "output": "Sunny"}  # type: ignore[union-attr]
    line = stack.logged(2)[-1]
    cached = second.usage.cache_read_input_tokens  # Anthropic's usage always says it, 0 or more
    assert cached is not None and line["prompt_tokens"] == second.usage.input_tokens + cached
    assert line["completion_tokens"] == second.usage.output_tokens


def test_anthropic_messages_stream_with_tool_use(stack: Stack) -> None:
    client = claude_client(stack)
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with client.messages.stream(model="codex-mini", max_tokens=256, tools=[CLAUDE_TOOL],  # type: ignore[list-item]
                                messages=history) as stream:
        events = list(stream)
        first = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "input_json" in kinds and first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert tool_use.input == {"location": "New York City"}  # type: ignore[union-attr]
    assert first.usage.output_tokens > 0 and first.usage.input_tokens > 0  # message_delta's
    line = stack.logged(1)[-1]
    assert (line["prompt_tokens"], line["completion_tokens"]) == (first.usage.input_tokens,
                                                                  first.usage.output_tokens)
    history += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id,  # type: ignore[union-attr]
                                              "content": "Sunny"}]}]
    with client.messages.stream(model="codex-mini", max_tokens=256, tools=[CLAUDE_TOOL],  # type: ignore[list-item]
                                messages=history) as stream:
        text = "".join(stream.text_stream)
        second = stream.get_final_message()
    assert text and second.stop_reason == "end_turn"


def expected_count(model: str, texts: list[str], messages: int) -> int:
    encoding = load_encoding(tiktoken.model.encoding_name_for_model(model))
    return len(encoding.encode_ordinary("\n".join(texts))) + 4 * messages + 3


@pytest.mark.parametrize(("alias", "model"), [("gpt-4-chat", "gpt-4"), ("gpt-5-pro", "gpt-5-pro")])
def test_count_tokens_in_the_backend_models_tokenizer(stack: Stack, alias: str, model: str) -> None:
    assert tiktoken.model.encoding_name_for_model(model) == (
        "cl100k_base" if model == "gpt-4" else "o200k_base")
    before = len(stack.sim.records)
    history: list[Any] = [
        {"role": "user", "content": "What is the weather in Paris today?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"location": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "Sunny, 21 degrees"}]}]
    counted = claude_client(stack).messages.count_tokens(
        model=alias, system="You are terse.", messages=history, tools=[CLAUDE_TOOL])  # type: ignore[list-item]
    tool = orjson.dumps({"name": "get_weather", "description": "Current weather.",
                         "parameters": CLAUDE_TOOL["input_schema"]}).decode()
    texts = ["You are terse.", "What is the weather in Paris today?", "Checking.", "get_weather",
             '{"location":"Paris"}', "Sunny, 21 degrees", tool]
    assert counted.input_tokens == expected_count(model, texts, 4)
    # The same count in a translated stream's message_start (Claude Code reads it there).
    streamed = True  # through messages->chat and messages->Responses alike
    if streamed:
        with claude_client(stack).messages.stream(
                model=alias, system="You are terse.", messages=history,
                tools=[CLAUDE_TOOL], max_tokens=64) as stream:  # type: ignore[list-item]
            started = next(e for e in stream if e.type == "message_start")
            assert started.message.usage.input_tokens == counted.input_tokens
            for _ in stream:
                pass
    assert len(stack.sim.records) == before + streamed  # counted by the gateway: only the stream went up
    plain = claude_client(stack).messages.count_tokens(
        model=alias, messages=[{"role": "user", "content": "Hello there"}])
    assert plain.input_tokens == expected_count(model, ["Hello there"], 1)


def test_upstream_429_and_400_reach_each_client_as_its_sdks_exception(stack: Stack) -> None:
    chat, claude = chat_client(stack), claude_client(stack)
    hello: list[Any] = [{"role": "user", "content": "Hello"}]
    # A 429 cools its backend down: each alias gets one, after its 400s.
    with pytest.raises(openai.BadRequestError):
        chat.chat.completions.create(model="gpt-5-pro", messages=hello, stream=True,
                                     extra_headers={"x-sim-fault": "400"})
    with pytest.raises(anthropic.BadRequestError) as bad, claude.messages.stream(
            model="codex-mini", max_tokens=64, messages=hello,
            extra_headers={"x-sim-fault": "400"}) as stream:
        list(stream)
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.RateLimitError) as limited:
        chat.chat.completions.create(model="gpt-5-pro", messages=hello, extra_headers={"x-sim-fault": "429"})
    assert limited.value.response.headers.get("retry-after")
    assert "rate limit" in limited.value.message  # the upstream's own words
    with pytest.raises(anthropic.RateLimitError) as claude_limited:
        claude.messages.create(model="codex-mini", max_tokens=64, messages=hello,
                               extra_headers={"x-sim-fault": "429"})
    assert claude_limited.value.response.headers.get("retry-after")
    assert claude_limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    # Each was the upstream's own answer, re-rendered in the client's shape.
    outcomes = [r.outcome for r in stack.sim.records]
    assert outcomes.count("fault:400") == 2 and outcomes.count("fault:429") == 2


def test_what_cannot_map_is_refused_in_each_clients_shape(stack: Stack) -> None:
    before = len(stack.sim.records)
    with pytest.raises(openai.BadRequestError) as chat_refused:
        chat_client(stack).chat.completions.create(model="gpt-5-pro", n=2,
                                                   messages=[{"role": "user", "content": "Hi"}])
    assert chat_refused.value.code == "unsupported_parameter" and chat_refused.value.param == "n"
    assert "gpt-5-pro" in chat_refused.value.message
    with pytest.raises(anthropic.BadRequestError) as claude_refused:
        claude_client(stack).messages.create(model="codex-mini", max_tokens=64, stop_sequences=["END"],
                                             messages=[{"role": "user", "content": "Hi"}])
    assert "stop_sequences" in claude_refused.value.message and "codex-mini" in claude_refused.value.message
    assert len(stack.sim.records) == before  # refused before any upstream call
