"""The Responses API on deployments that do not speak it: a chat-only alias (Mistral on
Foundry's model inference API) and a Claude alias (Anthropic Messages), reached with the
official openai SDK (`responses.create`, `responses.stream`, stored responses, compact)
and the openai-agents SDK, through the gateway to the simulator. What the backend was
sent is read from the simulator's records."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from gateway.translate import opaque
from tests.conftest import KEY_A, Stack, default_config

TOOL = {"type": "function", "name": "get_weather", "description": "Current weather.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"], "additionalProperties": False}, "strict": True}


def translated(sim: str) -> dict[str, Any]:
    config = default_config(sim)
    config["deployments"] += [
        {"name": "claude-sonnet-4-5", "model": "claude-sonnet-4-5", "default_max_tokens": 2048,
         "backends": [{"url": sim + "/anthropic", "provider": "anthropic",
                       "auth": {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}}]},
        {"name": "gpt-5-mini", "model": "gpt-5-mini", "backends": [
            {"url": sim, "provider": "azure-openai", "deployment": "gpt5-mini-east",
             "auth": {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}}]},
    ]
    config["consumers"][0]["deployments"] = ["chat", "mistral", "claude-sonnet-4-5", "gpt-5-mini"]
    return config


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    made: Stack = make_stack(translated)
    return made


def client(stack: Stack, key: str = KEY_A) -> OpenAI:
    return OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0)


def sent(stack: Stack, operation: str) -> dict[str, Any]:
    """The body of the last upstream request of this operation."""
    return next(r.body for r in reversed(stack.sim.records) if r.operation == operation)


@pytest.mark.parametrize("alias", ["mistral", "claude-sonnet-4-5"])
def test_create_on_a_translated_alias(stack: Stack, alias: str) -> None:
    reply = client(stack).responses.create(model=alias, instructions="Be brief.",
                                           input="Hello there", max_output_tokens=64)
    assert reply.id.startswith("resp_gw_") and reply.object == "response"
    assert reply.status == "completed" and reply.output_text
    assert reply.instructions == "Be brief." and reply.max_output_tokens == 64
    assert reply.usage is not None and reply.usage.output_tokens == 16
    assert reply.usage.total_tokens == reply.usage.input_tokens + 16
    if alias == "mistral":
        body = sent(stack, "chat/completions")
        assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "Hello there"}]
        assert body["max_tokens"] == 64 and "input" not in body and "stream" not in body
    else:
        body = sent(stack, "messages")
        assert body["system"] == "Be brief." and body["max_tokens"] == 64
        assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]


@pytest.mark.parametrize("alias", ["mistral", "claude-sonnet-4-5"])
def test_streamed_events_in_order_with_sequence_numbers(stack: Stack, alias: str) -> None:
    events = list(client(stack).responses.create(model=alias, input="Hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert text and final.output_text == text and final.usage.output_tokens == 16
    if alias == "mistral":  # the chat backend is asked for the usage the terminal event carries
        assert sent(stack, "chat/completions")["stream_options"] == {"include_usage": True}
    with client(stack).responses.stream(model=alias, input="Hi again") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        done = stream.get_final_response()
    assert done.output_text == "".join(deltas) and done.usage is not None


@pytest.mark.parametrize("streamed", [False, True])
def test_function_tool_loop_on_the_claude_alias(stack: Stack, streamed: bool) -> None:
    c = client(stack)
    question = [{"role": "user", "content": "Weather in Paris?"}]
    if streamed:
        with c.responses.stream(model="claude-sonnet-4-5", input=question,  # type: ignore[arg-type]
                                tools=[TOOL]) as stream:  # type: ignore[list-item]
            arguments = "".join(e.delta for e in stream
                                if e.type == "response.function_call_arguments.delta")
            first = stream.get_final_response()
        assert arguments == '{"location":"Paris, France"}'
    else:
        first = c.responses.create(model="claude-sonnet-4-5", input=question,  # type: ignore[arg-type]
                                   tools=[TOOL])  # type: ignore[list-item]
    call = first.output[-1]
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.call_id.startswith("toolu_") and call.arguments == '{"location":"Paris, France"}'
    second = c.responses.create(
        model="claude-sonnet-4-5", tools=[TOOL],  # type: ignore[list-item]
        input=[*question, *[i.model_dump(exclude_none=True) for i in first.output],  # type: ignore[list-item]
               {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 22C"}])
    assert second.output_text and second.output[-1].type == "message"
    turns = sent(stack, "messages")["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][-1] == {"type": "tool_use", "id": call.call_id, "name": "get_weather",
                                       "input": {"location": "Paris, France"}}
    assert turns[2]["content"] == [{"type": "tool_result", "tool_use_id": call.call_id,
                                    "content": "Sunny, 22C"}]
    assert sent(stack, "messages")["tools"][0]["input_schema"] == TOOL["parameters"]


def test_tool_history_on_the_chat_alias_keeps_the_call_ids(stack: Stack) -> None:
    reply = client(stack).responses.create(model="mistral", tools=[TOOL], input=[  # type: ignore[list-item]
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_abc", "name": "get_weather",
         "arguments": '{"location": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_abc", "output": "Sunny"}],
        tool_choice="auto", parallel_tool_calls=False)
    assert reply.output_text
    body = sent(stack, "chat/completions")
    assert body["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "Sunny"}]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather.", "parameters": TOOL["parameters"],
        "strict": True}}]
    assert body["tool_choice"] == "auto" and body["parallel_tool_calls"] is False


@pytest.mark.parametrize("field,value,param", [
    ("tools", [{"type": "web_search"}], "tools[0].type"),
    ("tools", [{"type": "file_search", "vector_store_ids": ["vs_1"]}], "tools[0].type"),
    ("tools", [{"type": "code_interpreter", "container": {"type": "auto"}}], "tools[0].type"),
    ("tools", [{"type": "mcp", "server_label": "x", "server_url": "https://x"}], "tools[0].type"),
    ("background", True, "background"),
    ("include", ["message.output_text.logprobs"], "include[0]"),
    ("input", [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
     "input[0].content[0]"),
])
@pytest.mark.parametrize("alias", ["mistral", "claude-sonnet-4-5"])
def test_what_cannot_map_is_refused_naming_field_and_deployment(
        stack: Stack, alias: str, field: str, value: Any, param: str) -> None:
    before = len(stack.sim.records)
    body = {"input": "Hi", field: value}
    with pytest.raises(openai.BadRequestError) as err:
        client(stack).responses.create(model=alias, **body)
    assert err.value.code == "unsupported_parameter" and err.value.param == param
    assert f"'{param}'" in err.value.message and alias in err.value.message
    assert len(stack.sim.records) == before  # nothing reached the backend


async def test_openai_agents_sdk_runs_a_tool_agent_on_the_claude_alias(stack: Stack) -> None:
    await _run_agent(stack, "claude-sonnet-4-5", "Paris, France", "messages")


async def test_openai_agents_sdk_runs_a_tool_agent_on_the_chat_alias(stack: Stack) -> None:
    # The simulator's chat model calls an offered tool when asked to (the Anthropic one
    # always does), and answers once the tool's result is back.
    await _run_agent(stack, "mistral", None, "chat/completions", {"x-sim-tool-calls": "1"})


async def _run_agent(stack: Stack, alias: str, argument: str | None, operation: str,
                     headers: dict[str, str] | None = None) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # the SDK would otherwise export traces to OpenAI
    calls: list[str] = []

    @function_tool
    def get_weather(location: str) -> str:
        """Current weather for a location."""
        calls.append(location)
        return f"Sunny in {location}"

    model = OpenAIResponsesModel(alias, AsyncOpenAI(base_url=stack.url + "/v1", api_key=KEY_A,
                                                    max_retries=0, default_headers=headers))
    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather], model=model)
    result = await Runner.run(agent, "What is the weather in Paris?")
    assert len(calls) == 1
    if argument is not None:  # the Claude alias's simulator calls the tool with this one
        assert calls == [argument]
    assert isinstance(result.final_output, str) and result.final_output
    assert len([r for r in stack.sim.records if r.operation == operation]) == 2


def test_stored_on_a_translated_alias_follow_up_retrieve_items_delete(stack: Stack) -> None:
    c = client(stack)
    made = c.responses.create(model="mistral", input="Remember the word kiwi", metadata={"k": "v"})
    follow = c.responses.create(model="mistral", input="Which word?", previous_response_id=made.id)
    assert follow.previous_response_id == made.id and follow.metadata == {}  # not carried over
    # The backend got the stored conversation before the new input.
    assert [m["content"] for m in sent(stack, "chat/completions")["messages"]] == [
        "Remember the word kiwi", made.output_text, "Which word?"]
    fetched = c.responses.retrieve(made.id)
    assert fetched.id == made.id and fetched.output_text == made.output_text
    assert fetched.metadata == {"k": "v"}
    replayed = list(c.responses.retrieve(made.id, stream=True))
    assert replayed[-1].type == "response.completed"
    assert "".join(e.delta for e in replayed if e.type == "response.output_text.delta") == made.output_text
    items = c.responses.input_items.list(follow.id)
    assert [i.content[0].text for i in items.data] == ["Which word?"]  # type: ignore[union-attr]
    c.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(made.id)
    with pytest.raises(openai.BadRequestError):  # the conversation lost its start
        c.responses.create(model="mistral", input="More", previous_response_id=follow.id)


def test_streamed_and_stored_then_continued_on_claude(stack: Stack) -> None:
    c = client(stack)
    with c.responses.stream(model="claude-sonnet-4-5", input="Remember kiwi") as stream:
        made = stream.get_final_response()
    follow = c.responses.create(model="claude-sonnet-4-5", input="Which word?",
                                previous_response_id=made.id)
    assert follow.output_text
    turns = sent(stack, "messages")["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [{"type": "text", "text": made.output_text}]
    assert c.responses.retrieve(made.id).status == "completed"


def test_store_false_keeps_nothing(stack: Stack) -> None:
    c = client(stack)
    made = c.responses.create(model="claude-sonnet-4-5", input="Forget me", store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="claude-sonnet-4-5", input="x", previous_response_id=made.id)


def test_another_consumer_sees_nothing_stored_by_the_gateway(stack: Stack) -> None:
    from tests.conftest import KEY_B

    made = client(stack).responses.create(model="mistral", input="Mine")
    other = client(stack, KEY_B)
    for attempt in (lambda: other.responses.retrieve(made.id),
                    lambda: other.responses.delete(made.id),
                    lambda: other.responses.input_items.list(made.id),
                    lambda: other.responses.create(model="mistral", input="x",
                                                   previous_response_id=made.id)):
        with pytest.raises(openai.NotFoundError):
            attempt()


def test_compaction_on_a_native_deployment_is_passed_on(stack: Stack) -> None:
    compacted = client(stack).responses.compact(
        model="gpt-5-mini", input=[{"role": "user", "content": "Build a landing page"}])
    assert compacted.object == "response.compaction"
    assert compacted.output[-1].type == "compaction"
    record = stack.sim.records[-1]
    assert record.path == "/openai/v1/responses/compact" and record.body["model"] == "gpt5-mini-east"


@pytest.mark.parametrize("alias,operation", [("mistral", "chat/completions"),
                                             ("claude-sonnet-4-5", "messages")])
# The SDK types every output message as the assistant's: dumping the kept user messages
# warns (as it does for a native compaction).
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_compaction_on_a_translated_deployment_is_done_by_the_gateway(
        stack: Stack, alias: str, operation: str) -> None:
    c = client(stack)
    history: list[Any] = [
        {"role": "developer", "content": "You are a coding agent."},
        {"role": "user", "content": "Build a landing page"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]},
        {"role": "user", "content": "Now add a footer"}]
    compacted = c.responses.compact(model=alias, input=history, instructions="Be helpful.")
    assert compacted.object == "response.compaction" and compacted.id.startswith("resp_gw_")
    assert compacted.usage.output_tokens == 16
    kept = [i for i in compacted.output if i.type == "message"]
    assert [i.content[0].text for i in kept] == ["Build a landing page", "Now add a footer"]  # type: ignore[union-attr]
    item = compacted.output[-1]
    assert item.type == "compaction"
    summary = opaque.decode(opaque.SUMMARY, item.encrypted_content)
    assert summary is not None and summary["text"]
    # The backend was asked, in its own API, for the summary after the conversation.
    asked = sent(stack, operation)["messages"]
    assert "Context checkpoint" in str(asked[-1]["content"])
    # The client's next turn uses the output verbatim: the summary reaches the model.
    follow = c.responses.create(model=alias, input=[
        *[i.model_dump(exclude_none=True) for i in compacted.output],  # type: ignore[list-item]
        {"role": "user", "content": "Continue"}])
    assert follow.output_text
    assert summary["text"] in str(sent(stack, operation)["messages"])


@pytest.mark.parametrize("alias", ["mistral", "claude-sonnet-4-5"])
def test_upstream_errors_reach_the_client_as_its_own_sdk_exceptions(stack: Stack, alias: str) -> None:
    c = client(stack)
    with pytest.raises(openai.BadRequestError) as refused:
        c.responses.create(model=alias, input="x", extra_headers={"x-sim-fault": "400"})
    assert refused.value.body is not None
    with pytest.raises(openai.BadRequestError):  # a stream refused before its first event
        list(c.responses.create(model=alias, input="x", stream=True,
                                extra_headers={"x-sim-fault": "400"}))
    # Last: a 429 cools the only backend down, and the gateway answers 429 itself meanwhile.
    with pytest.raises(openai.RateLimitError) as limited:
        c.responses.create(model=alias, input="x", extra_headers={"x-sim-fault": "429"})
    assert limited.value.response.headers.get("retry-after")
