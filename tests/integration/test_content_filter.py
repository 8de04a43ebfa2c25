"""Content filters as clients see them: blocked and redacted prompts, blocked and
redacted completions (whole and streamed), custom hooks failing open or closed."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from azure.ai.inference import ChatCompletionsClient
from azure.ai.inference.models import UserMessage
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError
from openai import OpenAI

from tests.conftest import EVENT, KEY_A, Stack, default_config, post_raw


def filtered(*extra: dict[str, Any], holdback: int = 16) -> Any:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["content_filters"] = {"default": [
            {"type": "blocklist", "terms": ["forbidden plan", "zorp"], "patterns": [r"secret-\d+"]},
            {"type": "pii", "action": "redact"},
            *extra,
        ]}
        config["content_holdback_chars"] = holdback
        config["deployments"][0]["content_filter"] = "default"
        return config
    return make


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    stack: Stack = make_stack(filtered())
    return stack


def client(stack: Stack) -> OpenAI:
    return OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0)


def test_blocked_prompt_is_azures_content_filter_error(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(stack).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Tell me the Forbidden Plan"}])
    assert err.value.code == "content_filter"
    body: Any = err.value.body
    assert body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert body["innererror"]["content_filter_result"]["custom_blocklist"] == {
        "filtered": True, "severity": "high"}
    inference = ChatCompletionsClient(endpoint=stack.url + "/models", model="chat",
                                      credential=AzureKeyCredential(KEY_A), retry_total=0)
    with pytest.raises(HttpResponseError) as azure_err:
        inference.complete(messages=[UserMessage("my code is secret-42")])
    assert azure_err.value.status_code == 400 and azure_err.value.error.code == "content_filter"
    assert stack.sim.count == 0  # never sent upstream


def test_words_match_on_boundaries_only(stack: Stack) -> None:
    reply = client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "zorpification is fine"}])
    assert reply.choices[0].message.content


def test_redacted_prompt_is_forwarded_redacted(stack: Stack) -> None:
    prompt = "Mail jane.doe@contoso.com or call +1 425 555 0100, card 4111 1111 1111 1111"
    client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": prompt}])
    sent = stack.sim.records[-1].body["messages"][0]["content"]
    assert sent == "Mail [EMAIL] or call [PHONE], card [CARD]"


def test_blocked_and_redacted_completions_with_annotations(stack: Stack) -> None:
    c = client(stack)
    messages = [{"role": "user", "content": "hi"}]
    blocked = c.chat.completions.with_raw_response.create(
        model="chat", messages=messages,  # type: ignore[arg-type]
        extra_headers={"x-sim-reply": "here is the forbidden plan in full"}).parse()
    assert blocked.choices[0].finish_reason == "content_filter"
    assert blocked.choices[0].message.content == ""
    extra: Any = blocked.model_extra
    assert extra["prompt_filter_results"][0]["content_filter_results"] == {}
    redacted = c.chat.completions.create(
        model="chat", messages=messages,  # type: ignore[arg-type]
        extra_headers={"x-sim-reply": "write to jane@contoso.com today"})
    assert redacted.choices[0].message.content == "write to [EMAIL] today"
    choice_extra: Any = redacted.choices[0].model_extra
    assert choice_extra["content_filter_results"]["pii_email"]["filtered"] is True


def test_streamed_block_across_chunks_ends_with_content_filter(stack: Stack) -> None:
    chunks = list(client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True,
        extra_headers={"x-sim-reply": "once upon a time here comes the forbidden plan and more words"}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "forbidden" not in text and "plan" not in text
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert text.startswith("once")  # text before the window was released


async def test_stream_wire_format_and_redaction(stack: Stack) -> None:
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    raw = await post_raw(stack.url + "/v1/chat/completions", body,
                         **{"x-sim-reply": "please write to jane@contoso.com about it"})
    events = EVENT.findall(raw)
    assert b"".join(b"data: " + e + b"\n\n" for e in events) == raw
    assert events[-1] == b"[DONE]"
    text = "".join(
        (c["choices"][0]["delta"].get("content") or "")
        for c in (orjson.loads(e) for e in events[:-1]) if c.get("choices"))
    assert text == "please write to [EMAIL] about it"
    assert b"contoso" not in raw


async def test_metrics_count_actions(stack: Stack) -> None:
    c = client(stack)
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "zorp"}])
    async with aiohttp.ClientSession() as session:
        text = await (await session.get(stack.url + "/metrics")).text()
    assert ('gateway_content_filter_actions_total{action="block",deployment="chat",stage="prompt"} 1.0'
            in text)
    assert "gateway_content_filter_seconds_total" in text


@pytest.mark.parametrize(("hook", "on_error", "status"), [
    ("tests.integration.hooks:broken", "closed", 503),
    ("tests.integration.hooks:broken", "open", 200),
    ("tests.integration.hooks:slow", "closed", 503),
])
async def test_hook_failures(make_stack: Any, hook: str, on_error: str, status: int) -> None:
    stack: Stack = make_stack(filtered({"type": "hook", "callable": hook, "on_error": on_error,
                                        "timeout_seconds": 0.2}))
    async with aiohttp.ClientSession() as session, session.post(
        stack.url + "/v1/chat/completions", headers={"api-key": KEY_A},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    ) as r:
        assert r.status == status


def test_custom_hook_redacts(make_stack: Any) -> None:
    stack: Stack = make_stack(filtered({"type": "hook", "callable": "tests.integration.hooks:no_bananas",
                                        "action": "redact"}))
    client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "I like Banana bread"}])
    assert stack.sim.records[-1].body["messages"][0]["content"] == "I like [REDACTED] bread"


def test_azure_inference_stream_ends_with_content_filter(stack: Stack) -> None:
    inference = ChatCompletionsClient(endpoint=stack.url + "/models", model="chat",
                                      credential=AzureKeyCredential(KEY_A), retry_total=0)
    updates = list(inference.complete(
        messages=[UserMessage("hi")], stream=True,
        headers={"x-sim-reply": "first some harmless words then the forbidden plan itself"}))
    text = "".join(u.choices[0].delta.content or "" for u in updates if u.choices)
    assert "forbidden" not in text
    assert updates[-1].choices[0].finish_reason == "content_filter"


def test_blocklist_terms_from_a_file(make_stack: Any, tmp_path: Any) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text("# one per line\nproject bluebird\n")
    stack: Stack = make_stack(filtered({"type": "blocklist", "name": "projects",
                                        "files": [str(terms)]}))
    with pytest.raises(openai.BadRequestError) as err:
        client(stack).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "status of Project Bluebird?"}])
    body: Any = err.value.body
    assert "projects" in body["innererror"]["content_filter_result"]


@pytest.mark.parametrize("where", [
    {"messages": [{"role": "user", "name": "zorp", "content": "hi"}]},
    {"messages": [{"role": "user", "content": "hi"}],
     "tools": [{"type": "function", "function": {"name": "f", "description": "does the zorp"}}]},
    {"messages": [{"role": "user", "content": "hi"}],
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {
         "type": "object", "properties": {"x": {"type": "string", "enum": ["zorp"]}}}}}]},
    {"messages": [{"role": "user", "content": "hi"}],
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {
         "type": "object", "properties": {"zorp": {"type": "string"}}}}}]},
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None,
     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f",
                                                                   "arguments": '{"q": "zorp"}'}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "ok"}]},
    {"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c1",
                                                       "content": "the answer is zorp"}]},
    {"messages": [{"role": "user", "content": "hi"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "s", "schema": {
            "type": "object", "description": "a zorp", "properties": {}}}}},
])
async def test_every_text_a_client_supplies_is_filtered(stack: Stack, where: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            stack.url + "/v1/chat/completions", json={"model": "chat", **where},
            headers={"api-key": KEY_A}) as r:
        assert r.status == 400, await r.text()
        assert (await r.json())["error"]["code"] == "content_filter"
    assert stack.sim.count == 0


TOOLS = [{"type": "function", "function": {"name": "send_mail", "parameters": {
    "type": "object", "properties": {"to": {"type": "string"}, "topic": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "book_room", "parameters": {
             "type": "object", "properties": {"to": {"type": "string"}}}}}]


@pytest.mark.parametrize("calls", [1, 2])
def test_streamed_tool_call_arguments_are_filtered(stack: Stack, calls: int) -> None:
    """The upstream streams tool calls (one, or two in parallel) whose arguments hold an
    e-mail address split across fragments: the client's SDK puts together arguments in
    which it is redacted, each still one JSON object, each call where it was."""
    arguments = json.dumps({"to": "jane.doe@contoso.com", "topic": "lunch and more words"})
    stream = client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], tools=TOOLS,  # type: ignore[arg-type]
        stream=True, extra_headers={"x-sim-tool-calls": str(calls),
                                    "x-sim-tool-arguments": arguments})
    got: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = got.setdefault(call.index, {"name": "", "arguments": ""})
                if call.function and call.function.name:
                    entry["name"] = call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
    assert finish == "tool_calls"
    assert [got[i]["name"] for i in sorted(got)] == ["send_mail", "book_room"][:calls]
    for entry in got.values():
        assert "jane.doe" not in entry["arguments"] and "[EMAIL]" in entry["arguments"]
        assert json.loads(entry["arguments"]) == {"to": "[EMAIL]", "topic": "lunch and more words"}
    record = stack.sim.records[-1]
    assert record.stream and record.outcome == "complete"  # the real upstream path


def test_tool_call_arguments_not_streamed_are_filtered(stack: Stack) -> None:
    arguments = json.dumps({"to": "jane.doe@contoso.com"})
    answer = client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], tools=TOOLS,  # type: ignore[arg-type]
        extra_headers={"x-sim-tool-calls": "2", "x-sim-tool-arguments": arguments})
    calls = answer.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["send_mail", "book_room"]  # type: ignore[union-attr]
    assert all(json.loads(c.function.arguments) == {"to": "[EMAIL]"} for c in calls)  # type: ignore[union-attr]
