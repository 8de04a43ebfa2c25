"""Anthropic's Messages API through the gateway, with the official anthropic SDK
(`Anthropic` and `AnthropicFoundry`): plain and streamed, the stream helper with
tool use, count_tokens, and the SDK's exceptions and retries for the gateway's own
errors, which come in Anthropic's shape."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic import Anthropic, AnthropicFoundry

from gateway.simulator import Fault, SimulatorSettings
from tests.conftest import KEY_A, OPENAI_KEY, UPSTREAM_KEY, Stack, default_config

TOOL = {"name": "get_weather", "description": "Current weather.",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                         "required": ["location"]}}
HELLO = [{"role": "user", "content": "Hello"}]


def with_claude(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    config["deployments"].append(
        {"name": "claude-sonnet-4-5", "model": "claude-sonnet-4-5", "provider": "Anthropic",
         "backends": [{"url": sim + "/anthropic", "api": "anthropic",
                       "auth": {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}}]})
    config["consumers"][0]["deployments"] = ["chat", "claude-sonnet-4-5"]
    return config


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    made: Stack = make_stack(with_claude)
    return made


def client(stack: Stack, key: str = KEY_A, retries: int = 0) -> Anthropic:
    return Anthropic(base_url=stack.url + "/anthropic", api_key=key, max_retries=retries)


def test_create_plain_and_what_reaches_the_upstream(stack: Stack) -> None:
    c = client(stack)
    reply = c.messages.create(model="claude-sonnet-4-5", max_tokens=64, system="Be brief.",
                              messages=HELLO)  # type: ignore[arg-type]
    assert reply.type == "message" and reply.content[0].text  # type: ignore[union-attr]
    assert reply.usage.output_tokens == 16
    sent = stack.sim.records[-1]
    assert sent.path == "/anthropic/v1/messages" and sent.body["model"] == "claude-sonnet-4-5"
    # The gateway's own key upstream, as x-api-key; the client's anthropic-version passed on.
    assert sent.api_key == UPSTREAM_KEY
    assert sent.headers["anthropic-version"] == c.default_headers["anthropic-version"]
    assert KEY_A not in str(sent.headers)


def test_streamed_and_the_stream_helper_with_tool_use(stack: Stack) -> None:
    c = client(stack)
    events = list(c.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=HELLO,  # type: ignore[arg-type]
                                    stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "ping" not in kinds
    assert events[-2].usage.output_tokens == 16  # type: ignore[union-attr]
    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=64, tools=[TOOL],  # type: ignore[list-item]
                           messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and text
    tool_use = next(b for b in final.content if b.type == "tool_use")
    assert tool_use.name == "get_weather" and tool_use.input == {"location": "Paris, France"}  # type: ignore[union-attr]


def test_count_tokens(stack: Stack) -> None:
    counted = client(stack).messages.count_tokens(model="claude-sonnet-4-5", messages=HELLO)  # type: ignore[arg-type]
    assert counted.input_tokens == 1
    assert stack.sim.records[-1].path == "/anthropic/v1/messages/count_tokens"


def test_foundry_client_and_plain_api_key_header(stack: Stack) -> None:
    foundry = AnthropicFoundry(base_url=stack.url + "/anthropic/", api_key=KEY_A, max_retries=0)
    assert foundry.messages.create(model="claude-sonnet-4-5", max_tokens=16,
                                   messages=HELLO).content  # type: ignore[arg-type]
    # The /v1/messages route too, as Claude Code calls it with ANTHROPIC_BASE_URL.
    plain = Anthropic(base_url=stack.url, api_key=KEY_A, max_retries=0)
    assert plain.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=HELLO).content  # type: ignore[arg-type]


def test_the_sdk_raises_the_right_exception_for_each_gateway_error(make_stack: Any) -> None:
    def limited(sim: str) -> dict[str, Any]:
        config = with_claude(sim)
        config["content_filters"] = {"strict": [{"type": "blocklist", "terms": ["forbidden plan"]}]}
        config["deployments"][-1]["content_filter"] = "strict"
        config["deployments"][-1]["limits"] = {"requests_per_minute": 2}
        return config

    stack: Stack = make_stack(limited)
    with pytest.raises(anthropic.AuthenticationError) as auth:
        client(stack, "wrong").messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    assert auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert auth.value.request_id == auth.value.response.headers["x-request-id"]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client(stack).messages.create(model="no-such-model", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as blocked:
        client(stack).messages.create(model="claude-sonnet-4-5", max_tokens=8, system=[
            {"type": "text", "text": "Reveal the forbidden plan"}], messages=HELLO)  # type: ignore[arg-type]
    assert "content management policy" in blocked.value.message
    client(stack).messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError) as limited_error:
        client(stack).messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    headers = limited_error.value.response.headers
    assert limited_error.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(headers["retry-after"]) >= 1 and int(headers["retry-after-ms"]) > 0


def test_the_sdk_retries_an_upstream_429(make_stack: Any) -> None:
    sim = SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY), retry_after_ms=200,
                            faults=[Fault(kind="429", every=2)])
    stack: Stack = make_stack(with_claude, sim)
    client(stack).messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    reply = client(stack, retries=2).messages.create(model="claude-sonnet-4-5", max_tokens=8,  # type: ignore[arg-type]
                                                     messages=HELLO)
    assert reply.content
    # The second request met a 429; it reached the client with its retry-after (the only
    # backend), and the SDK waited and tried again.
    assert [r.outcome for r in stack.sim.records] == ["complete", "fault:429", "complete"]
