"""Response bodies in the three upstream shapes, modelled on ../shared/contract samples.

Text is deterministic: the same model and prompt always give the same words.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import struct
import time
from typing import Any

import orjson


class Service(enum.StrEnum):
    """The service the simulator answers as, told by the path it was called on: the
    upstream services it imitates (the gateway's providers are `gateway.providers`)."""

    AZURE_OPENAI = "azure-openai"
    AZURE_INFERENCE = "azure-ai-inference"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


WORDS = (
    "the gateway routes every request to a healthy deployment and streams tokens back "
    "while counting usage for each team with care and speed under load"
).split()

_SAFE = {"filtered": False, "severity": "safe"}
CHOICE_FILTERS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTERS = [
    {
        "prompt_index": 0,
        "content_filter_results": {
            **CHOICE_FILTERS,
            "jailbreak": {"filtered": False, "detected": False},
        },
    }
]


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def prompt_text(op: str, body: dict[str, Any]) -> str:
    if op == "chat/completions":
        messages = body.get("messages") or []
        texts = []
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return "\n".join(texts)
    value = body.get("prompt") if op == "completions" else body.get("input")
    return value if isinstance(value, str) else str(value)


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def reply_tokens(model: str, prompt: str, n: int) -> list[str]:
    seed = _digest(model, prompt)
    return [
        ("" if i == 0 else " ") + WORDS[seed[i % len(seed)] % len(WORDS)] for i in range(n)
    ]


def completion_id(model: str, prompt: str) -> str:
    return "chatcmpl-" + _digest("id", model, prompt).hex()[:24]


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"completion_tokens": completion, "prompt_tokens": prompt, "total_tokens": prompt + completion}


def add_details(usage: dict[str, Any], cached: int, reasoning: int) -> None:
    """Cached prompt and reasoning tokens, as Azure OpenAI reports them (parts of the
    prompt and completion counts, not on top of them)."""
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": min(cached, usage["prompt_tokens"])}
    if reasoning:
        usage["completion_tokens_details"] = {
            "reasoning_tokens": min(reasoning, usage["completion_tokens"])}


def chat(shape: str, model: str, ident: str, text: str, prompt: int, completion: int,
         finish: str, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"content": text, "role": "assistant"}
    if calls:
        message = {"content": None, "role": "assistant", "tool_calls": calls}
        finish = "tool_calls"
    choice: dict[str, Any] = {
        "finish_reason": finish,
        "index": 0,
        "message": message,
    }
    body: dict[str, Any] = {
        "choices": [choice],
        "created": int(time.time()),
        "id": ident,
        "model": model,
        "object": "chat.completion",
        "usage": usage(prompt, completion),
    }
    if shape == Service.AZURE_OPENAI:
        choice["content_filter_results"] = CHOICE_FILTERS
        choice["logprobs"] = None
        body["prompt_filter_results"] = PROMPT_FILTERS
        body["system_fingerprint"] = "fp_simulator"
    elif shape == Service.AZURE_INFERENCE:
        choice["message"].setdefault("tool_calls", None)
    else:  # OpenAI's own answers carry their fingerprint
        body["system_fingerprint"] = "fp_simulator"
    return body


# --- chat tool calls ---------------------------------------------------------------
# Asked for with `x-sim-tool-calls: N` on a chat request that offers function tools: the
# reply is N calls (parallel when N > 1) to the offered tools in turn, their arguments
# `x-sim-tool-arguments` (a JSON object; UTF-8 in base64 after "b64:") or made from each
# tool's parameters. Streamed as ../shared/contract/chat-completions-stream-tool-calls.sse
# and chat-completions-stream-parallel-tool-calls.sse: each call opened (id, type, name,
# arguments "") then its arguments in fragments, one call after the other.
FRAGMENT = 6  # characters of arguments per streamed fragment


def tool_arguments(tool: dict[str, Any]) -> str:
    function = tool.get("function") if isinstance(tool.get("function"), dict) else {}
    params = function.get("parameters") if isinstance(function, dict) else None
    props = params.get("properties") if isinstance(params, dict) else None
    values: dict[str, Any] = {}
    for name, schema in (props.items() if isinstance(props, dict) else ()):
        kind = schema.get("type") if isinstance(schema, dict) else None
        enum = schema.get("enum") if isinstance(schema, dict) else None
        values[name] = (enum[0] if isinstance(enum, list) and enum else
                        1 if kind in ("integer", "number") else True if kind == "boolean"
                        else "Edinburgh")
    return orjson.dumps(values).decode()


def tool_calls(body: dict[str, Any], n: int, arguments: str | None, seed: str) -> list[dict[str, Any]]:
    """The calls of a reply (message form), or none when no function tool is offered."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"
             and isinstance(t.get("function"), dict) and t["function"].get("name")]
    if not tools or n < 1:
        return []
    calls = []
    for i in range(n):
        tool = tools[i % len(tools)]
        ident = "call_" + _digest("call", seed, str(i)).hex()[:24]
        calls.append({"id": ident, "type": "function", "function": {
            "name": tool["function"]["name"],
            "arguments": arguments if arguments is not None else tool_arguments(tool)}})
    return calls


def fragments(arguments: str) -> list[str]:
    return [arguments[i:i + FRAGMENT] for i in range(0, len(arguments), FRAGMENT)] or [""]


def tool_call_deltas(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deltas that stream `calls`, after the recorded samples."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        opened = {"index": index, "id": call["id"], "type": "function",
                  "function": {"name": call["function"]["name"], "arguments": ""}}
        if len(calls) == 1:  # one call: opened in the role's own chunk
            deltas.append({"role": "assistant", "content": None, "tool_calls": [opened],
                           "refusal": None})
        else:
            if index == 0:
                deltas.append({"role": "assistant", "content": None})
            deltas.append({"tool_calls": [opened]})
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                   for piece in fragments(call["function"]["arguments"])]
    return deltas


def completion(model: str, ident: str, text: str, prompt: int, n: int, finish: str) -> dict[str, Any]:
    return {
        "choices": [{"finish_reason": finish, "index": 0, "logprobs": None, "text": text}],
        "created": int(time.time()),
        "id": ident.replace("chatcmpl-", "cmpl-"),
        "model": model,
        "object": "text_completion",
        "usage": usage(prompt, n),
    }


def chunk(shape: str, op: str, model: str, ident: str, delta: dict[str, Any] | str,
          finish: str | None, with_usage_null: bool) -> dict[str, Any]:
    if op == "completions":
        choice: dict[str, Any] = {"finish_reason": finish, "index": 0, "logprobs": None,
                                  "text": delta}
        obj = "text_completion"
    else:
        choice = {"delta": delta, "finish_reason": finish, "index": 0, "logprobs": None}
        obj = "chat.completion.chunk"
        if shape == Service.AZURE_OPENAI:  # filter results on text only (not the role, not the end)
            text = delta.get("content") if isinstance(delta, dict) else delta
            choice["content_filter_results"] = CHOICE_FILTERS if text else {}
    body: dict[str, Any] = {
        "choices": [choice],
        "created": int(time.time()),
        "id": ident,
        "model": model,
        "object": obj,
    }
    if shape in (Service.AZURE_OPENAI, Service.OPENAI) and op == "chat/completions":
        body["system_fingerprint"] = "fp_simulator"
    if with_usage_null:
        body["usage"] = None
    return body


def prompt_annotation_chunk() -> dict[str, Any]:
    """Azure's first streamed event: empty choices, prompt filter results, no usage."""
    return {"choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": PROMPT_FILTERS}


def usage_chunk(op: str, model: str, ident: str, prompt: int, n: int,
                shape: str = Service.OPENAI) -> dict[str, Any]:
    body: dict[str, Any] = {
        "choices": [],
        "created": int(time.time()),
        "id": ident,
        "model": model,
        "object": "text_completion" if op == "completions" else "chat.completion.chunk",
        "usage": usage(prompt, n),
    }
    if shape in (Service.AZURE_OPENAI, Service.OPENAI) and op == "chat/completions":
        body["system_fingerprint"] = "fp_simulator"
    return body


def vector(model: str, text: str, dims: int) -> list[float]:
    seed = _digest("embedding", model, text)
    return [round((seed[i % len(seed)] - 127.5) / 1275.0, 6) for i in range(dims)]


def embeddings(shape: str, model: str, inputs: list[str], dims: int, fmt: str | None) -> dict[str, Any]:
    data = []
    for i, text in enumerate(inputs):
        values = vector(model, text, dims)
        encoded: Any = values
        if fmt == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *values)).decode()
        data.append({"embedding": encoded, "index": i, "object": "embedding"})
    tokens = sum(count_tokens(t) for t in inputs)
    body: dict[str, Any] = {"data": data, "model": model, "object": "list",
                            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    if shape == Service.AZURE_INFERENCE:
        body["id"] = "emb-" + _digest("e", model, *inputs).hex()[:16]
        body["usage"]["completion_tokens"] = 0
    return body


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
