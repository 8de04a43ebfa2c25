"""Every policy holds on translated traffic: content filters read the client's shape on
the prompt side and the translated output on the completion side (held back in streams,
ended the way the client's API ends a blocked stream), and the records carry both the
client's API and the backend's."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from anthropic import Anthropic
from openai import OpenAI

from tests.conftest import KEY_A, Stack
from tests.integration.test_anthropic_api import with_claude
from tests.waiting import until

BLOCKED = "the forbidden plan"


def filtered(sim: str) -> dict[str, Any]:
    config = with_claude(sim)
    config["consumers"][0]["deployments"] += ["mistral"]
    config["content_filters"] = {"strict": [
        {"type": "blocklist", "terms": ["forbidden plan"]}]}
    for d in config["deployments"]:
        if d["name"] in ("claude-sonnet-4-5", "mistral"):
            d["content_filter"] = "strict"
    return config


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    made: Stack = make_stack(filtered)
    return made


def test_a_chat_prompt_to_a_claude_backend_is_read_in_chats_shape(stack: Stack) -> None:
    before = len(stack.sim.records)
    client = OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="claude-sonnet-4-5", messages=[
            {"role": "user", "content": f"Tell me about {BLOCKED}."}])
    assert refused.value.code == "content_filter"
    assert len(stack.sim.records) == before  # the backend never saw it


def test_a_blocked_answer_from_claude_ends_a_chat_stream_as_chat_ends_one(stack: Stack) -> None:
    client = OpenAI(base_url=stack.url + "/v1", api_key=KEY_A, max_retries=0)
    stream = client.chat.completions.create(
        model="claude-sonnet-4-5", stream=True, messages=[{"role": "user", "content": "Plans?"}],
        extra_headers={"x-sim-reply": f"Here is {BLOCKED} in full detail"})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "forbidden" not in text  # held back, never released
    assert chunks[-1].choices[0].finish_reason == "content_filter"


def test_a_blocked_answer_from_a_chat_backend_ends_an_anthropic_stream_as_claudes_does(
        stack: Stack) -> None:
    client = Anthropic(base_url=stack.url, api_key=KEY_A, max_retries=0)
    with client.messages.stream(
            model="mistral", max_tokens=64, messages=[{"role": "user", "content": "Plans?"}],
            extra_headers={"x-sim-reply": f"Here is {BLOCKED} in full detail"}) as stream:
        events = list(stream)
    text = "".join(e.delta.text for e in events
                   if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert "forbidden" not in text
    assert stream.get_final_message().stop_reason == "refusal"
    assert events[-1].type == "message_stop"


async def test_the_records_name_the_clients_api_and_the_backends(stack: Stack) -> None:
    client = anthropic.AsyncAnthropic(base_url=stack.url, api_key=KEY_A, max_retries=0)
    await client.messages.create(model="mistral", max_tokens=32,
                                 messages=[{"role": "user", "content": "Hello"}])
    lines = await until(lambda: [line for line in stack.access_log()
                                 if line["deployment"] == "mistral"], what="the request logged")
    assert (lines[-1]["api"], lines[-1]["backend_api"]) == ("messages", "chat/completions")
    async with aiohttp.ClientSession() as session, session.get(stack.url + "/metrics") as r:
        metrics = await r.text()
    assert any(line.startswith("gateway_requests_total{") and 'api="messages"' in line
               and 'backend_api="chat/completions"' in line and 'deployment="mistral"' in line
               for line in metrics.splitlines())
