"""Anthropic's `count_tokens` (`/v1/messages/count_tokens`) on a deployment that no
backend counts for (none is an Anthropic backend): answered by the gateway with a real
count, in the backend model's tokenizer, of the prompt as that backend sees it. Claude
Code calls it every turn and compacts its context by it: a made-up number breaks that.

The count (docs/contract.md §8): the prompt's texts joined by newlines, in the encoding
tiktoken's model table gives the backend's model (o200k_base for a model it does not
know): the system prompt, each message's text, a tool call's name and its arguments as
the JSON string the backend is sent, a tool result's text, each tool's definition as the
JSON function the backend is sent; plus 4 tokens per message, the system prompt one of
them, and 3 that prime the reply, as OpenAI counts a chat prompt. Images, files and
reasoning carried back are not counted: their cost is not in any text."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from gateway.apis.anthropic import PER_MESSAGE, REPLY_PRIMING
from gateway.core.flow import Flow
from gateway.core.operations import Operation
from gateway.core.replies import json_response
from gateway.core.tokens import ENCODINGS, TOKENIZER, Tokenizer
from gateway.enforcement.accounting import count
from gateway.translate import plan
from gateway.upstream.routing import Deployment

DEFAULT = "o200k_base"  # every current OpenAI model's, and the gateway's own estimate's
# One per encoding, each loaded on first use: an encoding costs tens of megabytes.
_TOKENIZERS: dict[str, Tokenizer] = {}


def encoding_for(model: str) -> str:
    """The encoding of a model by tiktoken's model table, among those the gateway ships."""
    import tiktoken.model  # the table only: no encoding is loaded by this

    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return DEFAULT
    return name if name in ENCODINGS else DEFAULT


def tokenizer_for(app: web.Application, model: str) -> Tokenizer:
    name = encoding_for(model)
    shared = app[TOKENIZER]
    if shared.name == name:
        return shared
    return _TOKENIZERS.setdefault(name, Tokenizer(name))


def _blocks(content: Any, pieces: list[str]) -> None:
    if isinstance(content, str):
        pieces.append(content)
        return
    for block in content if isinstance(content, list) else []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            pieces.append(block["text"])
        elif kind == "tool_use":
            pieces += [str(block.get("name") or ""), orjson.dumps(block.get("input") or {}).decode()]
        elif kind == "tool_result":
            _blocks(block.get("content"), pieces)
        elif kind == "document" and isinstance(block.get("source"), dict) \
                and block["source"].get("type") == "text":
            pieces.append(str(block["source"].get("data") or ""))


def prompt(body: dict[str, Any]) -> tuple[str, int]:
    """(the text a backend of another API is sent, how many messages hold it)."""
    pieces: list[str] = []
    messages = 0
    if body.get("system"):
        _blocks(body["system"], pieces)
        messages += 1
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            _blocks(message.get("content"), pieces)
            messages += 1
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            definition = {"name": tool.get("name"), "description": tool.get("description"),
                          "parameters": tool.get("input_schema")}
            pieces.append(orjson.dumps({k: v for k, v in definition.items() if v is not None}).decode())
    return "\n".join(pieces), messages


async def prompt_tokens(app: web.Application, body: dict[str, Any], model: str) -> int:
    """A Messages prompt's tokens as `model` counts them (the formula above)."""
    text, messages = prompt(body)
    return await count(tokenizer_for(app, model), text) + PER_MESSAGE * messages + REPLY_PRIMING


def prompt_tokens_now(app: web.Application, body: dict[str, Any], model: str) -> int:
    """The same count, at once: what `Target.count_prompt` may be, so that a translated
    stream's message_start says what count_tokens said (the encoding is loaded on first
    use, in place, unless it was preloaded)."""
    text, messages = prompt(body)
    return tokenizer_for(app, model).count(text) + PER_MESSAGE * messages + REPLY_PRIMING


async def answer(request: web.Request, flow: Flow, deployment: Deployment) -> web.Response:
    """The count, for the backend a Messages call to this deployment would go to first."""
    order = deployment.candidates(time.monotonic()) or list(deployment.backends)
    backend = next((b for b in order if plan(Operation.MESSAGES, b.urls) is not None), order[0])
    return json_response({"input_tokens": await prompt_tokens(request.app, flow.body, backend.model)})
