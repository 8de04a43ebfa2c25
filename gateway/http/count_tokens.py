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
from gateway.apis.shapes import items
from gateway.core.flow import Flow
from gateway.core.operations import Operation
from gateway.core.replies import json_response
from gateway.core.tokens import TOKENIZER, encoding_for
from gateway.enforcement.accounting import count
from gateway.translate import way
from gateway.upstream.routing import Deployment


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
    for message in items(body.get("messages")):
        if isinstance(message, dict):
            _blocks(message.get("content"), pieces)
            messages += 1
    for tool in items(body.get("tools")):
        if isinstance(tool, dict):
            definition = {"name": tool.get("name"), "description": tool.get("description"),
                          "parameters": tool.get("input_schema")}
            pieces.append(orjson.dumps({k: v for k, v in definition.items() if v is not None}).decode())
    return "\n".join(pieces), messages


async def prompt_tokens(app: web.Application, body: dict[str, Any], model: str) -> int:
    """A Messages prompt's tokens as `model` counts them (the formula above)."""
    text, messages = prompt(body)
    return await count(app[TOKENIZER], text, encoding_for(model)) + PER_MESSAGE * messages \
        + REPLY_PRIMING


async def answer(request: web.Request, flow: Flow, deployment: Deployment) -> web.Response:
    """The count, for the backend a Messages call to this deployment would go to first."""
    order = deployment.candidates(time.monotonic()) or list(deployment.backends)
    backend = next((b for b in order if way(Operation.MESSAGES, b.urls) is not None), order[0])
    return json_response({"input_tokens": await prompt_tokens(request.app, flow.body, backend.model)})
