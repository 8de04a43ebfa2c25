"""Each answer of the simulator, against the recorded samples it says it follows
(../shared/contract): every API, streamed and not, and each fault that has a recorded
counterpart. Shapes are compared, not values (`contract.mismatches`); streams by the
order of their kinds of event (a run of deltas counts once) and the shape of each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.simulator import SimulatorSettings, create_simulator
from tests.unit.gateway.simulator.contract import mismatches, runs, sample, sse

Client = TestClient  # type: ignore[type-arg]
HI = [{"role": "user", "content": "Hello there"}]
AZURE_CHAT = "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"
# Fields the README says come only with newer API versions or models.
NEWER = frozenset({"choices.message.annotations", "choices.message.refusal",
                   "usage.completion_tokens_details", "usage.prompt_tokens_details"})


@pytest.fixture
async def sim(aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_simulator(SimulatorSettings()))


async def post(sim: Client, path: str, body: dict[str, Any], **headers: str) -> tuple[int, Any]:
    async with sim.post(path, json=body, headers=headers) as r:
        text = await r.text()
        if r.content_type == "text/event-stream":
            return r.status, sse(text)
        return r.status, await r.json(content_type=None) if text else None


def same(got: Any, *samples: Any, optional: frozenset[str] = frozenset()) -> None:
    problems = mismatches(got, list(samples), optional=optional)
    assert not problems, "\n".join(problems)


# --- Chat Completions ----------------------------------------------------------------


def chat_kind(event: tuple[str, Any]) -> str:
    data = event[1]
    if data == "[DONE]":
        return "[DONE]"
    if not data["choices"]:
        return "prompt annotation" if "prompt_filter_results" in data else "usage"
    delta = data["choices"][0]["delta"]
    calls = delta.get("tool_calls") or []
    if "role" in delta:
        return "role" + (" + call opened" if calls else "")
    if calls:
        return "call opened" if "id" in calls[0] else "arguments"
    return "content" if delta.get("content") else "finish"


def compare_stream(got: list[tuple[str, Any]], recorded: list[tuple[str, Any]],
                   kind: Callable[[tuple[str, Any]], str],
                   optional: frozenset[str] = frozenset(),
                   also: list[tuple[str, Any]] = ()) -> None:  # type: ignore[assignment]
    """The order of kinds as `recorded`; each event's shape as the recorded events of its
    kind (in `recorded` and `also`, another recording of the same API)."""
    assert runs(map(kind, got)) == runs(map(kind, recorded))
    for event in got:
        like = [r[1] for r in (*recorded, *also) if kind(r) == kind(event)]
        if event[1] != "[DONE]":
            same(event[1], *like, optional=optional)


async def test_azure_chat_answer(sim: Client) -> None:
    status, got = await post(sim, AZURE_CHAT, {"messages": HI})
    assert status == 200
    same(got, sample("azure-openai-chat.json"), optional=NEWER)


async def test_azure_chat_stream_with_usage(sim: Client) -> None:
    status, got = await post(sim, AZURE_CHAT, {"messages": HI, "stream": True,
                                               "stream_options": {"include_usage": True}})
    assert status == 200
    compare_stream(got, sse(sample("azure-openai-chat-stream.sse")), chat_kind, NEWER)


async def test_azure_ai_inference_chat_answer(sim: Client) -> None:
    status, got = await post(sim, "/models/chat/completions?api-version=2024-05-01-preview",
                             {"model": "mistral-large-2411", "messages": HI})
    assert status == 200
    same(got, sample("azure-inference-chat.json"))


WEATHER = {"type": "function", "function": {"name": "GetWeatherArgs", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"},
                                     "units": {"type": "string", "enum": ["c", "f"]}}}}}
STOCK = {"type": "function", "function": {"name": "get_stock_price", "parameters": {
    "type": "object", "properties": {"ticker": {"type": "string"}, "exchange": {"type": "string"}}}}}


@pytest.mark.parametrize(("calls", "recording"), [
    (1, "chat-completions-stream-tool-calls.sse"),
    (2, "chat-completions-stream-parallel-tool-calls.sse"),
])
async def test_streamed_tool_calls(sim: Client, calls: int, recording: str) -> None:
    recorded = sse(sample(recording))
    # The recordings (2024) have a usage chunk without being asked; asked for, today's
    # chunks say "usage": null on each: compared without both.
    without_usage = [e for e in recorded if chat_kind(e) != "usage"]
    body = {"model": "gpt-4o", "messages": HI, "tools": [WEATHER, STOCK], "stream": True}
    status, got = await post(sim, "/v1/chat/completions", body, **{"x-sim-tool-calls": str(calls)})
    assert status == 200
    compare_stream(got, without_usage, chat_kind)
    # The arguments, put together per call, are each one JSON object.
    arguments: dict[int, str] = {}
    for _, data in got[:-1]:
        for call in data["choices"][0]["delta"].get("tool_calls") or []:
            arguments[call["index"]] = arguments.get(call["index"], "") + call["function"]["arguments"]
    assert sorted(arguments) == list(range(calls))
    names = []
    for _, data in got[:-1]:
        names += [c["function"]["name"] for c in data["choices"][0]["delta"].get("tool_calls") or []
                  if "id" in c]
    assert names == ["GetWeatherArgs", "get_stock_price"][:calls]

    status, with_usage = await post(sim, "/v1/chat/completions", {
        **body, "stream_options": {"include_usage": True}}, **{"x-sim-tool-calls": str(calls)})
    [usage] = [e[1] for e in with_usage if e[1] != "[DONE]" and not e[1]["choices"]]
    same(usage, *[e[1] for e in recorded if chat_kind(e) == "usage"], optional=NEWER)


async def test_a_tool_call_answer_not_streamed(sim: Client) -> None:
    status, got = await post(sim, "/v1/chat/completions",
                             {"model": "gpt-4o", "messages": HI, "tools": [WEATHER]},
                             **{"x-sim-tool-calls": "1", "x-sim-tool-arguments": '{"city": "Oslo"}'})
    assert status == 200
    [choice] = got["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "GetWeatherArgs", "arguments": '{"city": "Oslo"}'}
    assert call["type"] == "function" and call["id"].startswith("call_")
    # Its calls have the keys the streamed ones open with.
    opened = sse(sample("chat-completions-stream-tool-calls.sse"))[0][1]
    recorded = opened["choices"][0]["delta"]["tool_calls"][0]
    assert set(call) == set(recorded) - {"index"} and set(call["function"]) == set(recorded["function"])


# --- Embeddings --------------------------------------------------------------------------


@pytest.mark.parametrize("recording", ["embeddings-float.json", "embeddings-base64.json"])
async def test_embeddings(sim: Client, recording: str) -> None:
    fmt = {"encoding_format": "base64"} if "base64" in recording else {}
    samples = sample(recording)
    status, azure = await post(sim, "/openai/deployments/emb/embeddings?api-version=2024-10-21",
                               {"input": ["one", "two"], **fmt})
    assert status == 200
    same(azure, samples["azure_openai"])
    status, inference = await post(sim, "/models/embeddings", {
        "model": "embed-english-v3.0", "input": ["one"], **fmt})
    assert status == 200
    same(inference, samples["azure_ai_inference"])


# --- Responses -----------------------------------------------------------------------------

RESPONSES = ("responses-create.json", "responses-create-text.json")
# As the recordings' requests define it (the API echoes a tool's own schema back).
FUNCTION = {"type": "function", "name": "get_weather", "description": "Get current temperature.",
            "strict": False, "parameters": {
                "additionalProperties": False, "properties": {"location": {"type": "string"}},
                "required": ["location"], "title": "Arguments", "type": "object",
                "x-order": ["location"]}}


def responses_kind(event: tuple[str, Any]) -> str:
    return event[0]


async def test_responses_answer_text_and_function_call(sim: Client) -> None:
    recorded = [sample(name) for name in RESPONSES]
    status, text = await post(sim, "/v1/responses", {"model": "gpt-5-mini", "input": "Hello"})
    assert status == 200
    same(text, *recorded)
    status, call = await post(sim, "/v1/responses", {
        "model": "gpt-5-mini", "input": "Weather in Paris?", "tools": [FUNCTION]})
    assert status == 200 and [item["type"] for item in call["output"]] == ["function_call"]
    same(call, *recorded)


async def test_responses_stream_of_text(sim: Client) -> None:
    status, got = await post(sim, "/v1/responses", {"model": "gpt-5-mini", "input": "Hello",
                                                    "stream": True})
    assert status == 200
    compare_stream(got, sse(sample("responses-stream.sse")), responses_kind)


async def test_responses_stream_of_a_function_call(sim: Client) -> None:
    recorded = sse(sample("responses-stream-function-call.sse"))
    # The recording's model reasons first (an output item of its own): not simulated.
    reasoning = {data["output_index"] for name, data in recorded
                 if name == "response.output_item.added" and data["item"]["type"] == "reasoning"}
    recorded = [(n, d) for n, d in recorded if d.get("output_index") not in reasoning]
    status, got = await post(sim, "/v1/responses", {"model": "gpt-5-mini", "input": "Paris?",
                                                    "tools": [FUNCTION], "stream": True})
    assert status == 200
    compare_stream(got, recorded, responses_kind)


async def test_stored_responses_retrieve_input_items_and_delete(sim: Client) -> None:
    lifecycle = sample("responses-lifecycle.json")
    _, made = await post(sim, "/v1/responses", {"model": "gpt-5-mini", "input": "Keep this"})
    async with sim.get(f"/v1/responses/{made['id']}") as r:
        assert r.status == lifecycle["retrieve"]["status"]
        # The same object as a created one: held against every recorded response.
        same(await r.json(), lifecycle["retrieve"]["body"], *(sample(n) for n in RESPONSES))
    async with sim.get(f"/v1/responses/{made['id']}/input_items") as r:
        assert r.status == lifecycle["input_items"]["status"]
        same(await r.json(), lifecycle["input_items"]["body"])
    async with sim.delete(f"/v1/responses/{made['id']}") as r:
        assert r.status == lifecycle["delete"]["status"]
        same(await r.json(), lifecycle["delete"]["body"])
    async with sim.get(f"/v1/responses/{made['id']}") as r:
        assert r.status == 404
        assert (await r.json())["error"]["type"] == "invalid_request_error"


# --- Anthropic Messages ------------------------------------------------------------------


def anthropic_kind(event: tuple[str, Any]) -> str:
    name, data = event
    if name == "ping":  # "any number of ping events", anywhere: not part of the order
        return "(ping)"
    detail = (data.get("delta") or {}).get("type") or (data.get("content_block") or {}).get("type")
    return f"{name}/{detail}" if detail else name


CLAUDE = {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": HI}
TOOL = {"name": "get_weather", "input_schema": {"type": "object",
                                                "properties": {"location": {"type": "string"}}}}


async def test_anthropic_message(sim: Client) -> None:
    status, got = await post(sim, "/anthropic/v1/messages", CLAUDE)
    assert status == 200
    same(got, sample("anthropic-messages.json"))


@pytest.mark.parametrize(("tools", "recording"), [
    ([], "anthropic-messages-stream.sse"), ([TOOL], "anthropic-messages-stream-tool-use.sse")])
async def test_anthropic_streams(sim: Client, tools: list[Any], recording: str) -> None:
    status, got = await post(sim, "/anthropic/v1/messages", {**CLAUDE, "stream": True,
                                                             "tools": tools})
    assert status == 200
    recorded = sse(sample(recording))
    pings = [e for e in recorded if e[0] == "ping"]
    other = sse(sample(next(r for r in ("anthropic-messages-stream.sse",
                                        "anthropic-messages-stream-tool-use.sse") if r != recording)))
    compare_stream([e for e in got if e[0] != "ping"], [e for e in recorded if e[0] != "ping"],
                   anthropic_kind, also=other)
    # A ping after the first block opens, as recorded (the simulator sends more later).
    assert [e[0] for e in got[:3]] == [e[0] for e in recorded[:3]] and got[2][0] == "ping"
    for ping in (e for e in got if e[0] == "ping"):
        same(ping[1], *(p[1] for p in pings))


async def test_anthropic_count_tokens(sim: Client) -> None:
    status, got = await post(sim, "/anthropic/v1/messages/count_tokens", CLAUDE)
    assert status == 200
    same(got, sample("anthropic-count-tokens.json")["recorded_response_only"]["response"])


# --- Faults with a recorded counterpart ------------------------------------------------


async def test_azure_throttling_answer(sim: Client) -> None:
    async with sim.post(AZURE_CHAT, json={"messages": HI}, headers={"x-sim-fault": "429"}) as r:
        assert r.status == 429
        same(await r.json(), sample("azure-openai-429.json"))
        recorded = {line.split(":", 1)[0].lower() for line in
                    sample("azure-openai-429.headers.txt").splitlines()
                    if ":" in line and not line.startswith("#")}
        assert {"retry-after", "retry-after-ms"} <= recorded
        assert {"retry-after", "retry-after-ms"} <= {h.lower() for h in r.headers}


@pytest.mark.parametrize("fault", ["400", "500", "503", "429-retry-after", "429-retry-inf"])
async def test_azure_error_answers_have_the_error_envelope(sim: Client, fault: str) -> None:
    async with sim.post(AZURE_CHAT, json={"messages": HI}, headers={"x-sim-fault": fault}) as r:
        assert r.status == int(fault[:3])
        same(await r.json(), sample("azure-openai-429.json"))


async def test_a_bad_key_is_azures_401(aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    sim = await aiohttp_client(create_simulator(SimulatorSettings(accept=("good",))))
    status, body = await post(sim, AZURE_CHAT, {"messages": HI}, **{"api-key": "bad"})
    assert status == 401
    same(body, sample("azure-inference-errors.json")["invalid_key_401"]["body"])


@pytest.mark.parametrize(("fault", "case"), [
    ("400", "invalid_request_400"), ("429", "rate_limit_429"), ("529", "overloaded_529"),
    ("500", "rate_limit_429"),
])
async def test_anthropic_error_answers(sim: Client, fault: str, case: str) -> None:
    errors = sample("anthropic-error.json")
    status, body = await post(sim, "/anthropic/v1/messages", CLAUDE, **{"x-sim-fault": fault})
    assert status == int(fault)
    same(body, errors[case]["body"])
    assert body["error"]["type"] == (errors[case]["body"]["error"]["type"] if fault != "500"
                                     else "api_error")
