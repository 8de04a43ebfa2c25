"""Response bodies in the three upstream shapes, modelled on ../shared/contract samples.

Text is deterministic: the same model and prompt always give the same words.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from typing import Any

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
         finish: str) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "finish_reason": finish,
        "index": 0,
        "message": {"content": text, "role": "assistant"},
    }
    body: dict[str, Any] = {
        "choices": [choice],
        "created": int(time.time()),
        "id": ident,
        "model": model,
        "object": "chat.completion",
        "usage": usage(prompt, completion),
    }
    if shape == "azure-openai":
        choice["content_filter_results"] = CHOICE_FILTERS
        choice["logprobs"] = None
        body["prompt_filter_results"] = PROMPT_FILTERS
        body["system_fingerprint"] = "fp_simulator"
    elif shape == "azure-ai-inference":
        choice["message"]["tool_calls"] = None
    return body


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
        if shape == "azure-openai":
            choice["content_filter_results"] = CHOICE_FILTERS if delta else {}
    body: dict[str, Any] = {
        "choices": [choice],
        "created": int(time.time()),
        "id": ident,
        "model": model,
        "object": obj,
    }
    if shape == "azure-openai":
        body["system_fingerprint"] = "fp_simulator"
    if with_usage_null:
        body["usage"] = None
    return body


def prompt_annotation_chunk() -> dict[str, Any]:
    """Azure's first streamed event: empty choices, prompt filter results, no usage."""
    return {"choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": PROMPT_FILTERS}


def usage_chunk(op: str, model: str, ident: str, prompt: int, n: int) -> dict[str, Any]:
    return {
        "choices": [],
        "created": int(time.time()),
        "id": ident,
        "model": model,
        "object": "text_completion" if op == "completions" else "chat.completion.chunk",
        "usage": usage(prompt, n),
    }


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
    if shape == "azure-ai-inference":
        body["id"] = "emb-" + _digest("e", model, *inputs).hex()[:16]
        body["usage"]["completion_tokens"] = 0
    return body


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
