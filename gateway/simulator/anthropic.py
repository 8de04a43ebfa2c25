"""Anthropic's Messages API as the simulator answers it, after
../shared/contract/anthropic-*: messages (text, or text then a tool_use block when
a tool is offered and no tool_result came back yet), their streams with `ping`
events and the live API's space-padded JSON, count_tokens, and errors in
Anthropic's shape."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Send = Callable[[bytes, bytes], Awaitable[None]]
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 500: "api_error", 503: "api_error", 529: "overloaded_error"}


def error(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": "req_simulated"}


def prompt_text(body: dict[str, Any]) -> str:
    texts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        texts.append(system)
    elif isinstance(system, list):
        texts += [b["text"] for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)]
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and isinstance(block.get("text"), str):
                    texts.append(block["text"])
                elif isinstance(block, dict) and isinstance(block.get("content"), str):
                    texts.append(block["content"])
    return "\n".join(texts)


def wants_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name")]
    if not tools:
        return None
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result"
                                             for b in content):
            return None
    return tools[0]


def tool_input(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("input_schema")
    props = schema.get("properties") if isinstance(schema, dict) else None
    names = list(props) if isinstance(props, dict) else []
    return {names[0]: "Paris, France"} if names else {}


def message_id(model: str, text: str) -> str:
    return "msg_" + hashlib.sha256(f"{model}\x1f{text}".encode()).hexdigest()[:24]


def usage(prompt: int, output: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output, "service_tier": "standard"}


def message(body: dict[str, Any], model: str, tokens: list[str], prompt: int, finish: str) -> dict[str, Any]:
    ident = message_id(model, prompt_text(body))
    content: list[dict[str, Any]] = [{"type": "text", "text": "".join(tokens)}]
    output = len(tokens)
    tool = wants_tool(body)
    if tool is not None:
        content.append({"type": "tool_use", "id": "toolu_" + ident[4:28], "name": tool["name"],
                        "input": tool_input(tool)})
        finish, output = "tool_use", output + 8
    return {"model": model, "id": ident, "type": "message", "role": "assistant", "content": content,
            "stop_reason": "end_turn" if finish == "stop" else ("max_tokens" if finish == "length"
                                                                 else finish),
            "stop_sequence": None, "usage": usage(prompt, output)}


def _padded(obj: dict[str, Any], pad: int) -> bytes:
    """The live API pads data lines with spaces before the last brace (valid JSON)."""
    data = orjson.dumps(obj)
    return data[:-1] + b" " * pad + b"}" if pad else data


async def stream(send: Send, body: dict[str, Any], model: str, tokens: list[str], prompt: int,
                 finish: str, delay_s: float, stall: bool) -> None:
    whole = message(body, model, tokens, prompt, finish)
    count = 0

    async def event(obj: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        await send(obj["type"].encode(), _padded(obj, (count * 7) % 5))

    start = {**whole, "content": [], "stop_reason": None, "usage": usage(prompt, 1)}
    await event({"type": "message_start", "message": start})
    await event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    await send(b"ping", b'{"type": "ping"}')
    for i, token in enumerate(tokens):
        if stall and i == len(tokens) // 2:
            await asyncio.sleep(3600)
        if delay_s and i:
            await asyncio.sleep(delay_s)
        await event({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": token}})
        if i == len(tokens) // 2:
            await send(b"ping", b'{"type": "ping"}')
    await event({"type": "content_block_stop", "index": 0})
    for index, block in enumerate(whole["content"][1:], start=1):
        await event({"type": "content_block_start", "index": index,
                     "content_block": {**block, "input": {}}})
        raw = orjson.dumps(block["input"]).decode()
        for piece in ("", *(raw[i:i + 6] for i in range(0, len(raw), 6))):
            await event({"type": "content_block_delta", "index": index,
                         "delta": {"type": "input_json_delta", "partial_json": piece}})
        await event({"type": "content_block_stop", "index": index})
    await event({"type": "message_delta",
                 "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None},
                 "usage": {"output_tokens": whole["usage"]["output_tokens"]}})
    await event({"type": "message_stop"})
