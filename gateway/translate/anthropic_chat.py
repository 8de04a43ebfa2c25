"""What the two pairs between Chat Completions and Anthropic Messages share
(`chat_messages`, `messages_chat`): the stop-reason, reasoning and service-tier tables,
usage in either API's names (cached prompt tokens counted once), image and PDF parts,
tools and tool choices each way, and the screening that refuses every field a pair
neither maps nor passes over with a reason.

The tables are the ones docs/contract.md §8 publishes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.apis.shapes import as_int
from gateway.translate.base import Target, refuse

# Anthropic's stop_reason -> Chat Completions' finish_reason. `pause_turn` comes only
# from Anthropic's server tools, which no chat client can ask for; it is a stop.
TO_FINISH = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}
# Chat Completions' finish_reason -> Anthropic's stop_reason. Chat says "stop" both for
# a natural end and for a stop sequence, and never which sequence: end_turn.
TO_STOP = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
    "function_call": "tool_use", "content_filter": "refusal",
}

# Chat `reasoning_effort` -> Anthropic `thinking.budget_tokens` (1024 is Anthropic's
# least budget); `none` asks for no thinking.
EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
MIN_BUDGET = 1024
# Chat service_tier -> Anthropic's (flex, priority and scale have no counterpart).
TIERS = {"auto": "auto", "default": "standard_only"}
CHAT_TIERS = {v: k for k, v in TIERS.items()}
CACHE_PASSED = {"cache_control": "chat backends cache prompt prefixes by themselves, with no breakpoints"}


def effort_of(budget: int) -> str:
    """Anthropic's thinking budget -> chat `reasoning_effort`: the least effort whose
    budget covers it (the table above, read the other way; OpenAI's models take low,
    medium and high, so no budget maps to minimal)."""
    for effort in ("low", "medium"):
        if budget <= EFFORT_BUDGET[effort]:
            return effort
    return "high"


def chat_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic usage -> chat usage. Anthropic's input_tokens leaves out what was read
    from or written to the prompt cache; chat's prompt_tokens holds all of it, the part
    read from the cache shown again (not added) as cached_tokens."""
    cached = as_int(usage.get("cache_read_input_tokens"))
    prompt = as_int(usage.get("input_tokens")) + cached + as_int(usage.get("cache_creation_input_tokens"))
    output = as_int(usage.get("output_tokens"))
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output,
            "prompt_tokens_details": {"cached_tokens": cached}}


def anthropic_usage(usage: Mapping[str, Any]) -> dict[str, int]:
    """Chat usage -> Anthropic usage: the cached part moved out of input_tokens into
    cache_read_input_tokens, so that their sum is chat's prompt_tokens (counted once).
    Chat backends cache without being asked, and report no cache writes."""
    prompt = as_int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = min(prompt, as_int(details.get("cached_tokens"))) if isinstance(details, dict) else 0
    return {"input_tokens": prompt - cached, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached, "output_tokens": as_int(usage.get("completion_tokens"))}


# --- parts ------------------------------------------------------------------------------
def image_block(part: Mapping[str, Any], where: str, target: Target) -> dict[str, Any]:
    """A chat `image_url` part -> an Anthropic `image` block: a data: URL becomes a base64
    source, any other URL a url source. `detail` has no Anthropic counterpart (Claude
    sizes images itself) and is passed over."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise refuse(f"{where}.image_url.url", target, "an image part needs a URL")
    block: dict[str, Any]
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{where}.image_url.url", target)
        block = {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    else:
        block = {"type": "image", "source": {"type": "url", "url": url}}
    return _cached(part, block)


def image_part(block: Mapping[str, Any], where: str, target: Target) -> dict[str, Any]:
    """An Anthropic `image` block -> a chat `image_url` part (base64 as a data: URL)."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise refuse(f"{where}.source", target, f"an image source of type {kind!r} (a Files API "
                     "reference) has no Chat Completions counterpart")
    return {"type": "image_url", "image_url": {"url": url}}


def document_block(part: Mapping[str, Any], where: str, target: Target) -> dict[str, Any]:
    """A chat `file` part holding a PDF as a data: URL -> an Anthropic base64 document."""
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data.startswith("data:application/pdf"):
        raise refuse(f"{where}.file", target, "only inline PDFs (file_data as a data: URL) map to "
                     "Anthropic documents; uploaded file ids do not")
    media_type, payload = _data_url(data, f"{where}.file.file_data", target)
    block: dict[str, Any] = {"type": "document",
                             "source": {"type": "base64", "media_type": media_type, "data": payload}}
    if isinstance(file, dict) and isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return _cached(part, block)


def document_part(block: Mapping[str, Any], where: str, target: Target) -> dict[str, Any]:
    """An Anthropic document -> a chat part: a base64 PDF as a `file` part, a plain-text
    document as a text part."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict) and source.get("media_type") == "application/pdf":
        file = {"file_data": f"data:application/pdf;base64,{source.get('data')}",
                "filename": block.get("title") if isinstance(block.get("title"), str) else "document.pdf"}
        return {"type": "file", "file": file}
    if kind == "text" and isinstance(source, dict) and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    raise refuse(f"{where}.source", target, f"a document source of type {kind!r} has no Chat "
                 "Completions counterpart (inline PDFs and plain text map)")


def _data_url(url: str, where: str, target: Target) -> tuple[str, str]:
    head, comma, data = url.partition(",")
    if not comma or not head.endswith(";base64"):
        raise refuse(where, target, "a data: URL must be base64 (data:<type>;base64,...)")
    return head[len("data:"):-len(";base64")], data


def _cached(part: Mapping[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """A chat part's `cache_control` breakpoint kept on the Anthropic block."""
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def text_block(part: Mapping[str, Any]) -> dict[str, Any]:
    return _cached(part, {"type": "text", "text": part.get("text")})


# --- tools --------------------------------------------------------------------------------
def anthropic_tools(body: Mapping[str, Any], out: dict[str, Any], target: Target) -> None:
    """Chat tools, tool_choice and parallel_tool_calls -> Anthropic's tools and tool_choice
    (required is any; parallel_tool_calls false is disable_parallel_tool_use)."""
    tools = body.get("tools")
    if tools:
        out["tools"] = [_anthropic_tool(t, f"tools[{i}]", target) for i, t in enumerate(tools)]
    choice = body.get("tool_choice")
    mapped: dict[str, Any] | None = None
    if choice in ("auto", "none"):
        mapped = {"type": choice}
    elif choice == "required":
        mapped = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function" \
            and isinstance(choice.get("function"), dict):
        mapped = {"type": "tool", "name": choice["function"].get("name")}
    elif choice is not None:
        raise refuse("tool_choice", target, "Anthropic chooses among auto, none, any and one named tool")
    if body.get("parallel_tool_calls") is False and tools and (mapped or {}).get("type") != "none":
        mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
    if mapped is not None:
        out["tool_choice"] = mapped


def _anthropic_tool(tool: Any, where: str, target: Target) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
        raise refuse(where, target, "only function tools map to Anthropic tools")
    screen(tool, frozenset({"type", "function", "cache_control"}), {}, {}, where, target)
    screen(function, frozenset({"name", "description", "parameters", "strict"}), {}, {},
           f"{where}.function", target)
    out: dict[str, Any] = {"name": function.get("name"),
                           "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict") is not None:
        out["strict"] = function["strict"]
    if isinstance(tool.get("cache_control"), dict):
        out["cache_control"] = tool["cache_control"]
    return out


def chat_tools(body: Mapping[str, Any], out: dict[str, Any], target: Target) -> None:
    """Anthropic tools and tool_choice -> chat's: custom tools become function tools; any
    is required; disable_parallel_tool_use is parallel_tool_calls false."""
    mapped = [_chat_tool(t, f"tools[{i}]", target) for i, t in enumerate(body.get("tools") or [])]
    if mapped:
        out["tools"] = mapped
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or kind not in ("auto", "any", "tool", "none"):
        raise refuse("tool_choice", target, "tool_choice is auto, any, tool or none")
    screen(choice, frozenset({"type", "name", "disable_parallel_tool_use"}), {}, {}, "tool_choice", target)
    if kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") is True and mapped:
        out["parallel_tool_calls"] = False


def _chat_tool(tool: Any, where: str, target: Target) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise refuse(where, target, f"the {kind!r} tool runs on Anthropic's side or has a schema "
                     "only Claude knows; chat backends take function tools")
    screen(tool, frozenset({"type", "name", "description", "input_schema", "strict"}), CACHE_PASSED,
           {}, where, target)
    schema = tool.get("input_schema") or {"type": "object", "properties": {}}
    function: dict[str, Any] = {"name": tool.get("name"), "parameters": schema}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    """A tool_use block -> a chat tool call, its id kept."""
    return {"id": block.get("id"), "type": "function", "function": {
        "name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()}}


def tool_use(call: Any, where: str, target: Target) -> dict[str, Any]:
    """A chat tool call -> a tool_use block, its id kept."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or call.get("type", "function") != "function":
        raise refuse(where, target, "only function tool calls map to Anthropic tool_use")
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
            "input": arguments_object(function.get("arguments"), f"{where}.function.arguments", target)}


# --- fields -----------------------------------------------------------------------------
def screen(body: Mapping[str, Any], mapped: frozenset[str], passed: Mapping[str, str],
           refused: Mapping[str, str], where: str, target: Target) -> None:
    """Refuse every field of `body` that is neither mapped nor passed over with a reason
    (an unset field, null, is no field). `refused` holds the reasons of those refused
    whatever their value; anything unknown is refused as untranslatable."""
    for key, value in body.items():
        if value is None or key in mapped or key in passed:
            continue
        name = f"{where}.{key}" if where else key
        raise refuse(name, target, refused.get(key, f"the translation to the backend's API does "
                                                    f"not carry `{key}`"))


def arguments_object(raw: Any, where: str, target: Target) -> dict[str, Any]:
    """Chat tool-call arguments (a JSON string) -> Anthropic's tool input (an object)."""
    if raw is None or raw == "":
        return {}
    try:
        value = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise refuse(where, target, "Anthropic takes tool input as a JSON object; these arguments "
                     "are not one")
    return value


def parse_event(data: bytes) -> dict[str, Any]:
    """A backend event's JSON object; a ValueError (which the relay reports as a broken
    upstream event) for anything else."""
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def obj(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (what a lenient read wants)."""
    return value if isinstance(value, dict) else {}


def event(name: str, body: dict[str, Any]) -> tuple[bytes, bytes]:
    return name.encode(), orjson.dumps(body)
