"""The unmodified AzureOpenAI / AsyncAzureOpenAI clients on /openai/deployments/{name}/..."""

from __future__ import annotations

import openai
import pytest
from openai import AsyncAzureOpenAI, AzureOpenAI

from tests.conftest import KEY_A, KEY_B, UPSTREAM_KEY, Stack


def client(stack: Stack, key: str = KEY_A) -> AzureOpenAI:
    return AzureOpenAI(azure_endpoint=stack.url, api_key=key, api_version="2024-10-21",
                       max_retries=0)


def test_chat_routes_by_path_and_ignores_body_model(stack: Stack) -> None:
    reply = client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content
    # Azure's own annotations pass through untouched.
    assert reply.model_extra is not None and "prompt_filter_results" in reply.model_extra
    record = stack.sim.records[-1]
    assert record.path.startswith("/openai/deployments/gpt4o-mini-east/chat/completions")
    assert record.api_key == UPSTREAM_KEY  # the backend's key, never the caller's


def test_stream(stack: Stack) -> None:
    chunks = list(client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}], stream=True))
    # Azure's prompt-annotation chunk (empty choices, no usage) is not mistaken for usage.
    assert chunks[0].choices == [] and chunks[0].model_extra
    assert "prompt_filter_results" in chunks[0].model_extra
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_embeddings_and_completions(stack: Stack) -> None:
    emb = client(stack).embeddings.create(model="embed", input=["a", "b", "c"])
    assert [d.index for d in emb.data] == [0, 1, 2]
    text = client(stack, KEY_B).completions.create(model="oss", prompt="Hi", max_tokens=3)
    assert len(text.choices[0].text.split()) == 3


def test_unknown_deployment_is_deployment_not_found(stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client(stack).chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "DeploymentNotFound"
    assert "chat, embed" in err.value.message


def test_wrong_key_is_401(stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        client(stack, "nope").chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401 and err.value.code == "401"


async def test_async(stack: Stack) -> None:
    aclient = AsyncAzureOpenAI(azure_endpoint=stack.url, api_key=KEY_A,
                               api_version="2024-10-21", max_retries=0)
    reply = await aclient.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}])
    stream = await aclient.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}], stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == reply.choices[0].message.content
    await aclient.close()
