"""The Responses API as the simulator answers it, after ../shared/contract/responses-*:
created responses (text, or a function call when a function tool is offered and no
tool output came back yet), their streams event by event, a store for retrieval,
deletion, input items and cancellation (background jobs finish after a delay), and
`/responses/compact` (the user messages kept, then an opaque compaction item)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

Send = Callable[[bytes, dict[str, Any]], Awaitable[None]]
BACKGROUND_S = 0.3  # how long a background job takes


@dataclass
class Stored:
    response: dict[str, Any]
    items: list[dict[str, Any]]
    done_at: float = 0.0  # background: when it completes
    final: dict[str, Any] | None = None  # background: the response once done


@dataclass
class Store:
    responses: dict[str, Stored] = field(default_factory=dict)

    def get(self, ident: str) -> dict[str, Any] | None:
        stored = self.responses.get(ident)
        if stored is None:
            return None
        if stored.final is not None and time.monotonic() >= stored.done_at:
            stored.response, stored.final = stored.final, None
        return stored.response


def _id(prefix: str, *parts: str) -> str:
    return prefix + "_" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return [i for i in value if isinstance(i, dict)] if isinstance(value, list) else []


def prompt_text(body: dict[str, Any]) -> str:
    texts = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    for item in input_items(body):
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if isinstance(item.get("output"), str):
            texts.append(item["output"])
        if isinstance(item.get("arguments"), str):
            texts.append(item["arguments"])
    return "\n".join(texts)


def wants_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function tool to call: one is offered, tool_choice allows it, and no tool
    output has come back in this input yet."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    if not tools or body.get("tool_choice") == "none":
        return None
    if any(i.get("type") == "function_call_output" for i in input_items(body)):
        return None
    return tools[0]


def call_arguments(tool: dict[str, Any]) -> str:
    params = tool.get("parameters")
    props = params.get("properties") if isinstance(params, dict) else None
    names = list(props) if isinstance(props, dict) else []
    return orjson.dumps({names[0]: "New York City"} if names else {}).decode()


def usage(prompt: int, output: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + output}


def response(body: dict[str, Any], model: str, ident: str, status: str, output: list[dict[str, Any]],
             usage_: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": ident, "object": "response", "created_at": int(time.time()), "status": status,
        "background": body.get("background") is True, "error": None,
        "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None,
        "model": model, "output": output,
        "parallel_tool_calls": True, "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": None, "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None, "service_tier": "default",
        "store": body.get("store") is not False,
        "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto", "tools": [_echo_tool(t) for t in body.get("tools") or []],
        "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled",
        "usage": usage_, "user": None, "metadata": body.get("metadata") or {},
    }


def _echo_tool(tool: Any) -> Any:
    """A function tool as the API echoes it: with its description (or null) and strict."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool
    return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict", True)}


def outputs(body: dict[str, Any], ident: str, tokens: list[str], status: str = "completed"
            ) -> list[dict[str, Any]]:
    tool = wants_call(body)
    if tool is not None:
        return [{"id": _id("fc", ident), "type": "function_call", "status": status,
                 "arguments": call_arguments(tool), "call_id": _id("call", ident)[:29],
                 "name": tool.get("name", "")}]
    return [{"id": _id("msg", ident), "type": "message", "status": status, "role": "assistant",
             "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                          "text": "".join(tokens)}]}]


def output_count(body: dict[str, Any], tokens: list[str]) -> int:
    tool = wants_call(body)
    return max(1, len(call_arguments(tool)) // 4) if tool is not None else len(tokens)


def create(store: Store, body: dict[str, Any], model: str, tokens: list[str], prompt: int,
           incomplete: bool) -> dict[str, Any]:
    ident = _id("resp", model, prompt_text(body), str(time.time_ns()))
    status = "incomplete" if incomplete else "completed"
    made = response(body, model, ident, status, outputs(body, ident, tokens),
                    usage(prompt, output_count(body, tokens)))
    if incomplete:
        made["incomplete_details"] = {"reason": "max_output_tokens"}
    if body.get("store") is not False:
        items = [{**item, "id": item.get("id") or _id("msg", ident, str(i))}
                 for i, item in enumerate(input_items(body))]
        if body.get("background") is True:
            queued = {**made, "status": "queued", "output": [], "usage": None}
            store.responses[ident] = Stored(queued, items, time.monotonic() + BACKGROUND_S, made)
            return queued
        store.responses[ident] = Stored(made, items)
    return made


async def stream(send: Send, store: Store, body: dict[str, Any], model: str, tokens: list[str],
                 prompt: int, delay_s: float, stall: bool) -> str:
    """The events of one streamed response; returns "stall" if told to stall."""
    final = create(store, body, model, tokens, prompt, incomplete=False)
    ident = final["id"]
    seq = 0

    async def event(obj: dict[str, Any]) -> None:
        nonlocal seq
        obj = {"type": obj.pop("type"), "sequence_number": seq, **obj}
        seq += 1
        await send(obj["type"].encode(), obj)

    started = {**final, "status": "in_progress", "output": [], "usage": None}
    await event({"type": "response.created", "response": started})
    await event({"type": "response.in_progress", "response": started})
    for index, item in enumerate(final["output"]):
        await event({"type": "response.output_item.added", "output_index": index,
                     "item": {**item, "status": "in_progress",
                              **({"content": []} if item["type"] == "message" else {"arguments": ""})}})
        if item["type"] == "function_call":
            args = item["arguments"]
            for i in range(0, len(args), 4):
                await event({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                             "output_index": index, "delta": args[i:i + 4],
                             "obfuscation": _obfuscation(args[i:i + 4])})
            await event({"type": "response.function_call_arguments.done", "item_id": item["id"],
                         "output_index": index, "arguments": args})
        else:
            part = item["content"][0]
            await event({"type": "response.content_part.added", "item_id": item["id"],
                         "output_index": index, "content_index": 0, "part": {**part, "text": ""}})
            for i, token in enumerate(tokens):
                if stall and i == len(tokens) // 2:
                    await asyncio.sleep(3600)
                if delay_s and i:
                    await asyncio.sleep(delay_s)
                await event({"type": "response.output_text.delta", "item_id": item["id"],
                             "output_index": index, "content_index": 0, "delta": token,
                             "logprobs": [], "obfuscation": _obfuscation(token)})
            await event({"type": "response.output_text.done", "item_id": item["id"],
                         "output_index": index, "content_index": 0, "text": part["text"],
                         "logprobs": []})
            await event({"type": "response.content_part.done", "item_id": item["id"],
                         "output_index": index, "content_index": 0, "part": part})
        await event({"type": "response.output_item.done", "output_index": index, "item": item})
    await event({"type": "response.completed", "response": final})
    return str(ident)


def _obfuscation(delta: str) -> str:
    """The live API pads each delta event with random characters (against measuring
    token lengths from event sizes): here a deterministic stand-in of the same kind."""
    return hashlib.sha256(delta.encode()).hexdigest()[: max(1, 16 - len(delta))]


def not_found(ident: str, param: str | None = None) -> dict[str, Any]:
    what = "Previous response" if param else "Response"
    return {"error": {"message": f"{what} with id '{ident}' not found.",
                      "type": "invalid_request_error", "param": param,
                      "code": "previous_response_not_found" if param else None}}


def items_page(stored: Stored) -> dict[str, Any]:
    data = list(reversed(stored.items))  # newest first, the API's default order
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": False}


def compact(body: dict[str, Any], model: str, tokens: list[str], prompt: int) -> dict[str, Any]:
    """A compaction, in the shape of OpenAI's reference example: the input's user
    messages, then a compaction item whose content only the service can read."""
    ident = _id("resp", model, prompt_text(body), str(time.time_ns()))
    kept = [{**item, "type": "message"} for item in input_items(body)
            if item.get("role") == "user" and item.get("type") in (None, "message")]
    sealed = "gAAAAA" + base64.urlsafe_b64encode("".join(tokens).encode()).decode()
    return {"id": ident, "object": "response.compaction", "created_at": int(time.time()),
            "output": [*kept, {"id": _id("cmp", ident), "type": "compaction",
                               "encrypted_content": sealed}],
            "usage": usage(prompt, len(tokens))}
