"""The Responses API through the gateway, with the official openai SDK (OpenAI and
AzureOpenAI) and the openai-agents SDK: plain and streamed, the stream helper, a
function-call round trip with previous_response_id, and stored responses read back
only by the consumer that created them."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, AzureOpenAI, OpenAI

from tests.conftest import KEY_A, KEY_B, Stack, default_config
from tests.waiting import wait_for

TOOL = {"type": "function", "name": "get_weather", "description": "Current weather.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"], "additionalProperties": False}, "strict": True}


def with_responses(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    config["deployments"].append(
        {"name": "gpt-5-mini", "model": "gpt-5-mini", "backends": [
            {"url": sim, "api": "azure-openai", "deployment": "gpt5-mini-east",
             "auth": {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}}]})
    config["consumers"][0]["deployments"] = ["chat", "embed", "gpt-5-mini"]
    return config


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    made: Stack = make_stack(with_responses)
    return made


def client(stack: Stack, key: str = KEY_A, prefix: str = "/v1") -> OpenAI:
    return OpenAI(base_url=stack.url + prefix, api_key=key, max_retries=0)


@pytest.mark.parametrize("prefix", ["/v1", "/openai/v1"])
def test_create_plain(stack: Stack, prefix: str) -> None:
    reply = client(stack, prefix=prefix).responses.create(
        model="gpt-5-mini", instructions="Be brief.", input="Hello there", max_output_tokens=64)
    assert reply.status == "completed" and reply.output_text
    assert reply.usage is not None and reply.usage.output_tokens == 16
    sent = stack.sim.records[-1]
    # Azure's v1 route, with the deployment's name as the body's model.
    assert sent.path == "/openai/v1/responses" and sent.body["model"] == "gpt5-mini-east"
    assert sent.api_key == "upstream-secret" and "stream_options" not in sent.body


def test_azure_client_uses_the_api_version_route(stack: Stack) -> None:
    azure = AzureOpenAI(azure_endpoint=stack.url, api_key=KEY_A, api_version="2025-04-01-preview",
                        max_retries=0)
    reply = azure.responses.create(model="gpt-5-mini", input="Hello")
    assert reply.output_text


def test_streamed_events_and_the_stream_helper(stack: Stack) -> None:
    events = list(client(stack).responses.create(model="gpt-5-mini", input="Hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and events[-1].response.output_text == text  # type: ignore[union-attr]
    # No usage option was added: a Responses stream has its usage in response.completed.
    assert "stream_options" not in stack.sim.records[-1].body
    with client(stack).responses.stream(model="gpt-5-mini", input="Hi again") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas) and final.usage is not None


def test_function_call_round_trip_with_previous_response_id(stack: Stack) -> None:
    c = client(stack)
    first = c.responses.create(model="gpt-5-mini", input="Weather in NYC?", tools=[TOOL])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    second = c.responses.create(
        model="gpt-5-mini", previous_response_id=first.id, tools=[TOOL],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 22C"}])
    assert second.output_text and second.previous_response_id == first.id


def test_retrieve_input_items_and_delete(stack: Stack) -> None:
    c = client(stack)
    made = c.responses.create(model="gpt-5-mini", input="Remember me")
    fetched = c.responses.retrieve(made.id)
    assert fetched.id == made.id and fetched.output_text == made.output_text
    items = c.responses.input_items.list(made.id)
    first = items.data[0]
    assert first.type == "message" and first.content[0].text == "Remember me"  # type: ignore[union-attr]
    c.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(made.id)


def test_another_consumer_sees_nothing(stack: Stack) -> None:
    made = client(stack).responses.create(model="gpt-5-mini", input="Mine")
    other = client(stack, KEY_B)
    for attempt in (lambda: other.responses.retrieve(made.id),
                    lambda: other.responses.delete(made.id),
                    lambda: other.responses.input_items.list(made.id),
                    lambda: other.responses.create(model="gpt-5-mini", input="x",
                                                   previous_response_id=made.id)):
        with pytest.raises(openai.NotFoundError) as err:
            attempt()
        # The same answer as for an id that does not exist.
        assert "not found" in err.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        other.responses.retrieve("resp_does_not_exist")
    assert missing.value.status_code == 404
    assert client(stack).responses.retrieve(made.id).id == made.id  # still there for its owner


def test_background_response_is_polled_and_cancelled(stack: Stack) -> None:
    c = client(stack)
    queued = c.responses.create(model="gpt-5-mini", input="Take your time", background=True)
    assert queued.status == "queued"
    done = wait_for(lambda: (r := c.responses.retrieve(queued.id)).status == "completed" and r,
                    what="the background response completed")
    assert done.output_text
    other = c.responses.create(model="gpt-5-mini", input="Never mind", background=True)
    assert c.responses.cancel(other.id).status == "cancelled"


async def test_openai_agents_sdk_runs_an_agent_with_a_function_tool(stack: Stack) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # the SDK would otherwise export traces to OpenAI
    calls: list[str] = []

    @function_tool
    def get_weather(location: str) -> str:
        """Current weather for a location."""
        calls.append(location)
        return f"Sunny in {location}"

    model = OpenAIResponsesModel(
        "gpt-5-mini", AsyncOpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0))
    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather], model=model)
    result = await Runner.run(agent, "What is the weather in Paris?")
    assert calls == ["New York City"]  # the simulated model's choice of argument
    assert isinstance(result.final_output, str) and result.final_output
    assert len([r for r in stack.sim.records if r.operation == "responses"]) == 2


@pytest.mark.parametrize("model", ["gpt-5-mini", "mistral"])  # native, and translated to chat
def test_an_upstream_conversation_is_refused(stack: Stack, model: str) -> None:
    """The gateway cannot tell whose an upstream conversation is (it serves no
    Conversations API to record it): a conversation id is refused, never passed on."""
    with pytest.raises(openai.BadRequestError) as err:
        client(stack, key=KEY_B).responses.create(model=model, input="Go on.",
                                                  conversation="conv_68d5f6b0a3c48190")
    body: dict[str, Any] = err.value.body  # type: ignore[assignment]
    assert body["param"] == "conversation", body
    assert not [r for r in stack.sim.records if "conversation" in r.body]
