"""What the two pairs into the Responses API (`chat_responses`, `messages_responses`)
share of its wire: the request pieces both build alike (image and file parts, function
tools, the output cap, the fields every translated request carries), and what both read
alike of its answers (usage, why an answer ended, the texts of output items, errors).
Nothing here knows the client's API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.core.errors import UpstreamError

# The Responses API refuses a `max_output_tokens` below 16 (Chat and Messages take 1):
# a smaller cap is raised to it, so that a client's "one token" probe still works.
MIN_OUTPUT_TOKENS = 16
# Between two output items' texts (a "commentary" message, then the answer; two
# reasoning summaries), whole or streamed alike, so that they do not run together.
SEPARATOR = "\n\n"
# No parameter schema in the client's tool: a function without arguments.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def loads(data: bytes) -> dict[str, Any]:
    """A backend event's JSON object; anything else is the relay's "not a JSON object"."""
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def obj(value: Any) -> dict[str, Any]:
    """A JSON object where one belongs, or an empty one."""
    return value if isinstance(value, dict) else {}


def fixed(body: dict[str, Any]) -> dict[str, Any]:
    """What every translated request says: the backend keeps nothing (the client asked
    no backend to store anything, and could not follow a stored id up anyway)."""
    body["store"] = False
    return body


def max_output(limit: int) -> int:
    return max(limit, MIN_OUTPUT_TOKENS)


def sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    """`temperature` and `top_p`, unless at 1, their default on every API: reasoning
    models (o-series, gpt-5) refuse the fields whatever their value, and clients send the
    default unasked (Claude Code sends temperature 1)."""
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and value != 1:
            out[key] = value


def image_part(url: str, detail: Any = None) -> dict[str, Any]:
    """An image by URL or as a `data:` URL (base64), which input_image takes alike."""
    return {"type": "input_image", "image_url": url,
            "detail": detail if detail in ("low", "high", "auto") else "auto"}


def function_tool(name: Any, description: Any, parameters: Any, strict: Any) -> dict[str, Any]:
    """A function tool. `strict` is sent always: the Responses API's default is true,
    Chat's and Messages' false, and a strict schema must meet rules theirs need not."""
    tool: dict[str, Any] = {"type": "function", "name": name,
                            "parameters": parameters if parameters is not None else NO_PARAMETERS,
                            "strict": strict is True}
    if description is not None:
        tool["description"] = description
    return tool


@dataclass(slots=True)
class Counts:
    """A Responses usage: input includes the cached tokens, output the reasoning ones."""

    input: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0


def _int(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def counts(usage: Any) -> Counts | None:
    if not isinstance(usage, dict) or type(usage.get("input_tokens")) is not int:
        return None
    details = usage.get("input_tokens_details")
    out_details = usage.get("output_tokens_details")
    return Counts(_int(usage["input_tokens"]),
                  _int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
                  _int(usage.get("output_tokens")),
                  _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0)


def ending(response: dict[str, Any]) -> str:
    """Why an answer ended: "completed", "failed", or the reason it is incomplete
    (`max_output_tokens`, `content_filter`)."""
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return reason if isinstance(reason, str) and reason else "max_output_tokens"
    return "failed" if status in ("failed", "cancelled") else "completed"


def message_parts(item: dict[str, Any]) -> list[tuple[str, str]]:
    """A message item's parts as (kind, text): ("text", ...) or ("refusal", ...)."""
    parts = []
    for part in item.get("content") or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "output_text" and isinstance(part.get("text"), str):
            parts.append(("text", part["text"]))
        elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
            parts.append(("refusal", part["refusal"]))
    return parts


def reasoning_text(item: dict[str, Any]) -> str:
    """What a reasoning item shows: its summaries, and the raw reasoning text of models
    that give it (gpt-oss)."""
    texts = [p["text"] for key in ("summary", "content") for p in item.get(key) or []
             if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"]]
    return SEPARATOR.join(texts)


def error_of(holder: dict[str, Any]) -> tuple[str, str]:
    """(code, message) of an `error` event or of a failed response's `error`."""
    error = holder.get("error")
    if not isinstance(error, dict):
        return "upstream_error", "The upstream's response failed."
    code = error.get("code") or error.get("type") or "upstream_error"
    message = error.get("message") or "The upstream's response failed."
    return str(code), str(message)[:500]


def failed(response: dict[str, Any]) -> UpstreamError:
    """A whole answer that failed upstream, as the gateway's 502."""
    code, message = error_of(response)
    return UpstreamError(f"The upstream's response failed ({code}): {message}")


def arguments_object(arguments: Any) -> dict[str, Any]:
    """A function call's arguments (a JSON string) as the object a tool_use carries."""
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError("The model's tool call arguments are not a JSON object.")
    return value
