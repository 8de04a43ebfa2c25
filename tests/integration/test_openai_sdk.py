"""The unmodified openai SDK (OpenAI and AsyncOpenAI) against the gateway."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.conftest import KEY_A, KEY_B, UPSTREAM_KEY, Stack


def requests_post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"api-key": UPSTREAM_KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.fixture(params=["/v1", "/openai/v1"])
def base(request: pytest.FixtureRequest, stack: Stack) -> str:
    return stack.url + request.param


def test_chat(base: str, stack: Stack) -> None:
    client = OpenAI(base_url=base, api_key=KEY_A, max_retries=0)
    reply = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Say hello to the team"}]
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens == 16
    record = stack.sim.records[-1]
    # The alias was routed to the azure-openai backend and rewritten for it.
    assert record.path == "/openai/deployments/gpt4o-mini-east/chat/completions?api-version=2024-10-21"
    assert record.body["model"] == "gpt-4o-mini"


def test_chat_stream_hides_usage_chunk_not_asked_for(base: str, stack: Stack) -> None:
    client = OpenAI(base_url=base, api_key=KEY_A, max_retries=0)
    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "stream please"}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 16
    assert all(c.usage is None for c in chunks)
    # ... yet usage was asked of the upstream, for accounting.
    assert stack.sim.records[-1].body["stream_options"] == {"include_usage": True}


def test_chat_stream_keeps_usage_chunk_when_asked(base: str) -> None:
    client = OpenAI(base_url=base, api_key=KEY_A, max_retries=0)
    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}], stream=True,
        stream_options={"include_usage": True}))
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 16


def test_completions(base: str, stack: Stack) -> None:
    client = OpenAI(base_url=base, api_key=KEY_B, max_retries=0)
    reply = client.completions.create(model="oss", prompt="Once upon a time", max_tokens=5)
    assert len(reply.choices[0].text.split()) == 5
    assert reply.choices[0].finish_reason == "length"
    record = stack.sim.records[-1]
    assert record.path == "/v1/completions" and record.body["model"] == "llama-3.1-8b"


def test_embeddings_base64_passes_through_untouched(base: str, stack: Stack) -> None:
    client = OpenAI(base_url=base, api_key=KEY_A, max_retries=0)
    raw = client.embeddings.with_raw_response.create(model="embed", input=["alpha", "beta"])
    record = stack.sim.records[-1]
    assert record.body["encoding_format"] == "base64"  # the SDK's default, forwarded as is
    direct = requests_post(stack.sim_url + record.path, record.body)
    assert raw.http_response.json()["data"] == direct["data"]
    assert len(raw.parse().data[0].embedding) == 8


def test_embeddings_float(base: str) -> None:
    client = OpenAI(base_url=base, api_key=KEY_A, max_retries=0)
    raw = client.embeddings.with_raw_response.create(
        model="embed", input="alpha", encoding_format="float")
    vector = raw.parse().data[0].embedding
    assert len(vector) == 8 and all(isinstance(v, float) for v in vector)


def test_models_lists_only_what_the_caller_may_use(base: str) -> None:
    a = OpenAI(base_url=base, api_key=KEY_A, max_retries=0)
    b = OpenAI(base_url=base, api_key=KEY_B, max_retries=0)
    assert sorted(m.id for m in a.models.list()) == ["chat", "embed"]
    assert sorted(m.id for m in b.models.list()) == ["chat", "cohere-embed", "embed", "mistral", "oss"]
    assert a.models.retrieve("chat").id == "chat"
    with pytest.raises(openai.NotFoundError):
        a.models.retrieve("mistral")


def test_errors_as_the_sdk_surfaces_them(base: str) -> None:
    client = OpenAI(base_url=base, api_key=KEY_A, max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="mistral", messages=messages)  # not allowed = unknown
    assert not_found.value.code == "unknown_model"
    assert "chat, embed" in not_found.value.message
    with pytest.raises(openai.AuthenticationError) as unauth:
        OpenAI(base_url=base, api_key="wrong", max_retries=0).chat.completions.create(
            model="chat", messages=messages)
    assert unauth.value.code == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="chat", messages="not a list")  # type: ignore[arg-type]
    assert bad.value.code == "invalid_request" and bad.value.param == "messages"


async def test_async_client(base: str) -> None:
    client = AsyncOpenAI(base_url=base, api_key=KEY_A, max_retries=0)
    reply = await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "async"}])
    assert reply.choices[0].message.content
    stream = await client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "async"}], stream=True)
    words = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(words) == reply.choices[0].message.content
    emb = await client.embeddings.create(model="embed", input="v")
    assert len(emb.data[0].embedding) == 8
    await client.close()



def test_streamed_completions(stack: Stack) -> None:
    client = OpenAI(base_url=stack.url + "/v1", api_key=KEY_B, max_retries=0)
    chunks = list(client.completions.create(model="oss", prompt="Once", max_tokens=4, stream=True))
    assert len("".join(c.choices[0].text for c in chunks if c.choices).split()) == 4
    assert all(c.usage is None for c in chunks)
    assert stack.sim.records[-1].body["stream_options"] == {"include_usage": True}
