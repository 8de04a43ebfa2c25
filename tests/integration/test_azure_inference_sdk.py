"""The unmodified azure-ai-inference clients (sync and aio) on /models/..."""

from __future__ import annotations

import pytest
from azure.ai.inference import ChatCompletionsClient, EmbeddingsClient, ImageEmbeddingsClient
from azure.ai.inference.aio import ChatCompletionsClient as AsyncChatClient
from azure.ai.inference.aio import EmbeddingsClient as AsyncEmbeddingsClient
from azure.ai.inference.models import ImageEmbeddingInput, UserMessage
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from tests.conftest import KEY_A, KEY_B, UPSTREAM_KEY, Stack


def chat_client(stack: Stack, key: str = KEY_B, model: str | None = "mistral") -> ChatCompletionsClient:
    return ChatCompletionsClient(endpoint=stack.url + "/models", credential=AzureKeyCredential(key),
                                 model=model, retry_total=0)


def test_chat_and_stream(stack: Stack) -> None:
    client = chat_client(stack)
    reply = client.complete(messages=[UserMessage("How many feet are in a mile?")])
    assert reply.choices[0].message.content and reply.usage.completion_tokens == 16
    record = stack.sim.records[-1]
    assert record.path == "/models/chat/completions?api-version=2024-05-01-preview"
    assert record.body["model"] == "mistral-large-2411"
    assert record.api_key == UPSTREAM_KEY and record.authorization is None
    parts = [u.choices[0].delta.content or "" for u in
             client.complete(messages=[UserMessage("How many feet are in a mile?")], stream=True)
             if u.choices]
    assert "".join(parts) == reply.choices[0].message.content


def test_azure_openai_backend_behind_inference_route(stack: Stack) -> None:
    reply = chat_client(stack, model="chat").complete(messages=[UserMessage("hi")], stream=True)
    assert any(u.choices and u.choices[0].delta.content for u in reply)


def test_model_info(stack: Stack) -> None:
    client = chat_client(stack)
    info = client.get_model_info(headers={"x-ms-model-mesh-model-name": "mistral"})
    assert (info.model_name, info.model_type, info.model_provider_name) == (
        "mistral-large-2411", "chat-completion", "Mistral")


def test_model_from_header_when_body_has_none(stack: Stack) -> None:
    client = chat_client(stack, model=None)
    reply = client.complete(messages=[UserMessage("hi")],
                            headers={"azureml-model-deployment": "mistral"})
    assert reply.choices[0].message.content


def test_embeddings(stack: Stack) -> None:
    client = EmbeddingsClient(endpoint=stack.url + "/models", credential=AzureKeyCredential(KEY_B),
                              model="cohere-embed", retry_total=0)
    result = client.embed(input=["first", "second"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert stack.sim.records[-1].body["model"] == "embed-english-v3.0"


def test_errors(stack: Stack) -> None:
    with pytest.raises(ClientAuthenticationError):
        chat_client(stack, key="wrong").complete(messages=[UserMessage("hi")])
    with pytest.raises(ResourceNotFoundError) as err:
        chat_client(stack, key=KEY_A).complete(messages=[UserMessage("hi")])  # mistral not allowed
    assert err.value.error is not None and err.value.error.code == "unknown_model"
    with pytest.raises(HttpResponseError) as bad:
        chat_client(stack, model=None).complete(messages=[UserMessage("hi")])
    assert bad.value.status_code == 400 and bad.value.error.code == "no_model_name"


def test_extra_parameters(stack: Stack) -> None:
    client = chat_client(stack)
    # model_extras makes the SDK send `extra-parameters: pass-through`.
    client.complete(messages=[UserMessage("hi")], model_extras={"safe_prompt": True})
    assert stack.sim.records[-1].body["safe_prompt"] is True


async def test_aio_clients(stack: Stack) -> None:
    async with AsyncChatClient(endpoint=stack.url + "/models",
                               credential=AzureKeyCredential(KEY_B), model="mistral") as client:
        reply = await client.complete(messages=[UserMessage("hi")])
        stream = await client.complete(messages=[UserMessage("hi")], stream=True)
        parts = [u.choices[0].delta.content or "" async for u in stream if u.choices]
        assert "".join(parts) == reply.choices[0].message.content
    async with AsyncEmbeddingsClient(endpoint=stack.url + "/models",
                                     credential=AzureKeyCredential(KEY_A), model="embed") as emb:
        result = await emb.embed(input=["x"])
        assert len(result.data[0].embedding) == 8


def test_image_embeddings(stack: Stack) -> None:
    client = ImageEmbeddingsClient(endpoint=stack.url + "/models",
                                   credential=AzureKeyCredential(KEY_B), model="cohere-embed",
                                   retry_total=0)
    image = ImageEmbeddingInput(image="data:image/png;base64,iVBORw0KGgo=", text="a logo")
    result = client.embed(input=[image])
    assert len(result.data) == 1 and len(result.data[0].embedding) == 8
    record = stack.sim.records[-1]
    assert record.path == "/models/images/embeddings?api-version=2024-05-01-preview"
    assert record.body["input"][0]["text"] == "a logo"


def test_image_embeddings_on_a_backend_without_them(stack: Stack) -> None:
    client = ImageEmbeddingsClient(endpoint=stack.url + "/models",
                                   credential=AzureKeyCredential(KEY_B), model="embed",
                                   retry_total=0)
    with pytest.raises(HttpResponseError) as err:
        client.embed(input=[ImageEmbeddingInput(image="data:image/png;base64,AA==")])
    assert err.value.status_code == 400 and err.value.error.code == "unsupported_operation"
