"""Anthropic's Messages API as the simulator answers it, after
../shared/contract/anthropic-*: messages (a signed thinking block first when a Claude
model is asked to think, text, then tool_use blocks when tools are offered and no
tool_result came back yet), their streams with `ping` events and the live API's
space-padded JSON, count_tokens, errors in Anthropic's shape, and the request checks
the real API makes (`check`), so that a sloppy translation fails in tests."""

from __future__ import annotations

import asyncio
import base64
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


def wants_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools the answer calls: none once a tool_result came back or when tool_choice
    is none; the named one for tool_choice tool; else every tool offered (parallel
    calls), or the first when disable_parallel_tool_use is set."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("name")]
    choice: dict[str, Any] = body["tool_choice"] if isinstance(body.get("tool_choice"), dict) else {}
    if not tools or choice.get("type") == "none":
        return []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result"
                                             for b in content):
            return []
    if choice.get("type") == "tool":
        return [t for t in tools if t["name"] == choice.get("name")][:1]
    return tools[:1] if choice.get("disable_parallel_tool_use") else tools


def tool_input(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("input_schema")
    props = schema.get("properties") if isinstance(schema, dict) else None
    names = list(props) if isinstance(props, dict) else []
    return {names[0]: "Paris, France"} if names else {}


def message_id(model: str, text: str) -> str:
    return "msg_" + hashlib.sha256(f"{model}\x1f{text}".encode()).hexdigest()[:24]


def usage(prompt: int, output: int, cached: int = 0) -> dict[str, Any]:
    return {"input_tokens": prompt - cached, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output, "service_tier": "standard"}


def cached_tokens(body: dict[str, Any], prompt: int) -> int:
    """A prompt with a `cache_control` breakpoint is read half from the cache (as a warm
    cache would answer), so that tests see a breakpoint arrive and cached tokens reported."""
    marked = b'"cache_control"' in orjson.dumps([body.get("system"), body.get("messages"), body.get("tools")])
    return prompt // 2 if marked else 0


# --- extended thinking --------------------------------------------------------------------
def thinks(body: dict[str, Any], model: str) -> bool:
    """Claude models think when asked, except when answering a tool result (thinking does
    not interleave with tool use without the beta)."""
    thinking = body.get("thinking")
    messages = body.get("messages") or [{}]
    last = messages[-1].get("content") if isinstance(messages[-1], dict) else None
    answering_tool = isinstance(last, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last)
    return model.startswith("claude") and isinstance(thinking, dict) \
        and thinking.get("type") == "enabled" and not answering_tool


def signature(thinking: str) -> str:
    """What the simulator signs a thinking block with; a block whose text changed on its
    way back no longer matches."""
    digest = hashlib.sha512(b"sim-thinking\x1f" + thinking.encode()).digest()
    return base64.b64encode(digest).decode()


def thinking_text(body: dict[str, Any]) -> str:
    tools = wants_tools(body)
    plan = f" I should call {tools[0]['name']}." if tools else " I can answer directly."
    return "The user wants an answer." + plan


# --- what the real API refuses --------------------------------------------------------------
def check(body: dict[str, Any]) -> str | None:
    """The request's first fault as Anthropic's API words it, or None: max_tokens
    required, only user and assistant turns, alternating from user, every tool_result
    answering a tool_use of the turn before (and every tool_use answered), no empty
    content, and thinking blocks back as they were signed."""
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    thinking = body.get("thinking")
    enabled = isinstance(thinking, dict) and thinking.get("type") == "enabled"
    if enabled:
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if max_tokens <= budget:
            return "`max_tokens` must be greater than `thinking.budget_tokens`."
        if body.get("temperature") not in (None, 1):
            return "`temperature` may only be set to 1 when thinking is enabled."
    uses: list[str] = []
    for i, message in enumerate(messages):
        problem = _check_turn(message, i, i == len(messages) - 1, uses)
        if problem:
            return problem
    last, before = messages[-1], messages[-2] if len(messages) > 1 else None
    if enabled and before is not None and _has(last, "tool_result"):
        first = _blocks(before)[0] if _blocks(before) else {}
        if first.get("type") not in ("thinking", "redacted_thinking"):
            return (f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or "
                    f"`redacted_thinking`, but found `{first.get('type')}`. When `thinking` is enabled, "
                    "a final `assistant` message must start with a thinking block (preceeding the "
                    "lastmost set of `tool_use` and `tool_result` blocks).")
    return None


def _blocks(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _has(message: Any, kind: str) -> bool:
    return any(b.get("type") == kind for b in _blocks(message))


def _check_turn(message: Any, i: int, final: bool, uses: list[str]) -> str | None:
    """One turn; `uses` holds the tool_use ids of the turn before and is updated."""
    role = message.get("role") if isinstance(message, dict) else None
    if role == "system":
        return (f'messages.{i}.role: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.')
    if role not in ("user", "assistant"):
        return f"messages.{i}.role: Input should be 'user' or 'assistant'"
    if role != ("user" if i % 2 == 0 else "assistant"):
        return (f"messages.{i}: roles must alternate between \"user\" and \"assistant\", "
                "starting with \"user\"")
    blocks = _blocks(message)
    if not blocks and not (final and role == "assistant"):
        return (f"messages.{i}: all messages must have non-empty content except for the optional "
                "final assistant message")
    for j, block in enumerate(blocks):
        if block.get("type") == "text" and not block.get("text"):
            return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
        signed = signature(str(block.get("thinking")))
        if block.get("type") == "thinking" and block.get("signature") != signed:
            return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
    if role == "assistant":
        uses[:] = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
        return None
    answered = [(j, str(b.get("tool_use_id"))) for j, b in enumerate(blocks)
                if b.get("type") == "tool_result"]
    for j, ident in answered:
        if ident not in uses:
            return (f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{ident}. Each `tool_result` block must have a corresponding `tool_use` block in "
                    "the previous message.")
    missing = [u for u in uses if u not in {ident for _, ident in answered}]
    if missing:
        return (f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message.")
    uses.clear()
    return None


def message(body: dict[str, Any], model: str, tokens: list[str], prompt: int, finish: str) -> dict[str, Any]:
    ident = message_id(model, prompt_text(body))
    content: list[dict[str, Any]] = []
    output = len(tokens)
    if thinks(body, model):
        thought = thinking_text(body)
        content.append({"type": "thinking", "thinking": thought, "signature": signature(thought)})
        output += len(thought.split())
    content.append({"type": "text", "text": "".join(tokens)})
    tools = wants_tools(body)
    for k, tool in enumerate(tools):
        content.append({"type": "tool_use", "id": f"toolu_{ident[4:26]}{k:02d}", "name": tool["name"],
                        "input": tool_input(tool)})
        output += 8
    if tools:
        finish = "tool_use"
    return {"model": model, "id": ident, "type": "message", "role": "assistant", "content": content,
            "stop_reason": "end_turn" if finish == "stop" else ("max_tokens" if finish == "length"
                                                                 else finish),
            "stop_sequence": None, "usage": usage(prompt, output, cached_tokens(body, prompt))}


def _padded(obj: dict[str, Any], pad: int) -> bytes:
    """The live API pads data lines with spaces before the last brace (valid JSON)."""
    data = orjson.dumps(obj)
    return data[:-1] + b" " * pad + b"}" if pad else data


# A block as content_block_start opens it, before its deltas fill it in.
EMPTY: dict[str, dict[str, Any]] = {"thinking": {"thinking": "", "signature": ""}, "text": {"text": ""},
                                    "tool_use": {"input": {}}}


async def stream(send: Send, body: dict[str, Any], model: str, tokens: list[str], prompt: int,
                 finish: str, delay_s: float, stall: bool) -> None:
    whole = message(body, model, tokens, prompt, finish)
    count = 0

    async def event(obj: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        await send(obj["type"].encode(), _padded(obj, (count * 7) % 5))

    async def delta(index: int, piece: dict[str, Any]) -> None:
        await event({"type": "content_block_delta", "index": index, "delta": piece})

    start = {**whole, "content": [], "stop_reason": None,
             "usage": {**whole["usage"], "output_tokens": 1}}
    await event({"type": "message_start", "message": start})
    for index, block in enumerate(whole["content"]):
        kind = block["type"]
        empty: dict[str, Any] = EMPTY[kind]
        await event({"type": "content_block_start", "index": index, "content_block": {**block, **empty}})
        if index == 0:
            await send(b"ping", b'{"type": "ping"}')
        if kind == "thinking":
            words = block["thinking"].split(" ")
            for i, word in enumerate(words):
                await delta(index, {"type": "thinking_delta", "thinking": ("" if i == 0 else " ") + word})
            await delta(index, {"type": "signature_delta", "signature": block["signature"]})
        elif kind == "text":
            for i, token in enumerate(tokens):
                if stall and i == len(tokens) // 2:
                    await asyncio.sleep(3600)
                if delay_s and i:
                    await asyncio.sleep(delay_s)
                await delta(index, {"type": "text_delta", "text": token})
                if i == len(tokens) // 2:
                    await send(b"ping", b'{"type": "ping"}')
        else:
            raw = orjson.dumps(block["input"]).decode()
            for piece in ("", *(raw[i:i + 6] for i in range(0, len(raw), 6))):
                await delta(index, {"type": "input_json_delta", "partial_json": piece})
        await event({"type": "content_block_stop", "index": index})
    await event({"type": "message_delta",
                 "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None},
                 "usage": {"output_tokens": whole["usage"]["output_tokens"]}})
    await event({"type": "message_stop"})
