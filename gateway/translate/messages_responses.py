"""An Anthropic Messages client (Claude Code, the anthropic SDK) on a Responses backend
(models Azure serves only on the Responses API): the Messages request as a Responses
request, field by field, refusing what has no meaning there. The answer, whole or
streamed, is `messages_responses_answer`'s.

Thinking blocks that came from a Responses model (their signature or data marked as
ours) go back as the reasoning items they were; another model's are passed over. The
field table is docs/contract.md §8."""

from __future__ import annotations

from typing import Any

from gateway.core.operations import Operation
from gateway.translate import responses_wire as wire
from gateway.translate.base import StreamTranslator, Target, Translator, refuse
from gateway.translate.messages_responses_answer import MARK, MessagesStream, answer

_NEUTRAL: dict[str, tuple[tuple[Any, ...], str]] = {
    "top_k": ((None,), "the Responses API has no top_k"),
    "stop_sequences": ((None, []), "the Responses API has no stop sequences"),
    "container": ((None,), "containers belong to Anthropic's code execution tool"),
    "mcp_servers": ((None, []), "Anthropic's MCP connector is not translated"),
}
_SAME = ("stream", "metadata")
_MAPPED = frozenset({"model", "messages", "system", "max_tokens", "tools", "tool_choice",
                     "thinking", "service_tier", "output_format", "output_config",
                     "context_management", "temperature", "top_p", *_SAME, *_NEUTRAL})
_EFFORTS = ("low", "medium", "high")
# Tool keys: cache_control is passed over, here and on every block (OpenAI models cache
# a repeated prompt prefix by themselves; there is no breakpoint to set).
_TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "strict", "cache_control"})
_TIERS = {"auto": "auto", "standard_only": "default"}


def effort(budget: Any) -> str:
    """A thinking budget as a reasoning effort: under 4096 tokens low, under 16384
    medium, else high."""
    budget = budget if isinstance(budget, int) else 0
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def _system(system: Any, target: Target) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    texts = []
    for i, block in enumerate(system if isinstance(system, list) else []):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise refuse(f"system[{i}]", target, "only text blocks can be instructions")
        texts.append(block.get("text") or "")
    return "\n\n".join(texts) or None


def _media(block: dict[str, Any], where: str, target: Target) -> dict[str, Any]:
    """An image or document block as an input part."""
    source = wire.obj(block.get("source"))
    kind, how = block.get("type"), source.get("type")
    if kind == "image" and how == "base64":
        return wire.image_part(f"data:{source.get('media_type')};base64,{source.get('data')}")
    if kind == "image" and how == "url":
        return wire.image_part(str(source.get("url")))
    if kind == "document" and not wire.obj(block.get("citations")).get("enabled"):
        if how == "base64":
            return {"type": "input_file", "filename": block.get("title") or "document.pdf",
                    "file_data": f"data:{source.get('media_type')};base64,{source.get('data')}"}
        if how == "text":
            return {"type": "input_text", "text": source.get("data") or ""}
        if how == "url":
            return {"type": "input_file", "file_url": source.get("url")}
    why = "citations are not translated" if kind == "document" and how in ("base64", "text", "url") \
        else f"a {how} source has no counterpart on the Responses API"
    raise refuse(f"{where}.source", target, why)


def _tool_output(content: Any, where: str, target: Target) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content if isinstance(content, list) else []):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "input_text", "text": block.get("text") or ""})
        elif kind in ("image", "document"):
            parts.append(_media(block, f"{where}.content[{j}]", target))
        else:
            raise refuse(f"{where}.content[{j}]", target, f"a {kind} block has no counterpart there")
    return parts


def _user(content: list[Any], where: str, target: Target) -> list[dict[str, Any]]:
    """A user turn's blocks, in order: its tool results as function call outputs, the
    blocks between them as user messages."""
    items: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind, at = (block.get("type") if isinstance(block, dict) else None), f"{where}.content[{j}]"
        if kind == "text":
            parts.append({"type": "input_text", "text": block.get("text") or ""})
        elif kind in ("image", "document"):
            parts.append(_media(block, at, target))
        elif kind == "tool_result":
            if parts:
                items.append({"type": "message", "role": "user", "content": parts})
                parts = []
            # is_error has no field there: the result's own text says what went wrong.
            items.append({"type": "function_call_output", "call_id": block.get("tool_use_id"),
                          "output": _tool_output(block.get("content"), at, target)})
        else:
            raise refuse(at, target, f"a {kind} block has no counterpart on the Responses API")
    if parts:
        items.append({"type": "message", "role": "user", "content": parts})
    return items


def _reasoning(block: dict[str, Any]) -> dict[str, Any] | None:
    """A thinking or redacted_thinking block as the reasoning item it came from; None
    for another model's (Claude's signature means nothing to an OpenAI model)."""
    held = block.get("signature") if block.get("type") == "thinking" else block.get("data")
    if not isinstance(held, str) or not held.startswith(MARK):
        return None
    thinking = block.get("thinking")
    summary = [{"type": "summary_text", "text": thinking}] if isinstance(thinking, str) and thinking else []
    return {"type": "reasoning", "summary": summary, "encrypted_content": held[len(MARK):]}


def _assistant(content: list[Any], where: str, target: Target) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            items.append({"type": "message", "role": "assistant", "content": block.get("text") or ""})
        elif kind == "tool_use":
            items.append({"type": "function_call", "call_id": block.get("id"), "name": block.get("name"),
                          "arguments": wire.dumps(block.get("input") or {}).decode()})
        elif kind in ("thinking", "redacted_thinking"):
            if (item := _reasoning(block)) is not None:
                items.append(item)
        else:
            raise refuse(f"{where}.content[{j}]", target, f"a {kind} block has no counterpart there")
    return items


def _system_turn(content: Any, where: str, target: Target) -> dict[str, Any]:
    """A `system` turn inside `messages` (Claude Code's environment, on a model it does
    not know): an input message of role system, where it stands."""
    if isinstance(content, str):
        return {"type": "message", "role": "system", "content": content}
    parts = []
    for j, block in enumerate(content if isinstance(content, list) else [None]):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise refuse(f"{where}.content[{j}]", target, "a system turn holds text blocks")
        parts.append({"type": "input_text", "text": block.get("text") or ""})
    return {"type": "message", "role": "system", "content": parts}


def _input(messages: list[Any], target: Target) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role, content = message.get("role"), message.get("content")
        extra = set(message) - {"role", "content"}
        if extra:
            raise refuse(f"{where}.{sorted(extra)[0]}", target, "it has no counterpart there")
        if role not in ("user", "assistant", "system"):
            raise refuse(f"{where}.role", target, f"a {role} message has no counterpart there")
        if role == "system":  # Claude Code's mid-conversation instructions: where they stand
            items.append(_system_turn(content, where, target))
        elif isinstance(content, str):
            items.append({"type": "message", "role": role, "content": content})
        elif role == "user":
            items += _user(content or [], where, target)
        else:
            items += _assistant(content or [], where, target)
    return items


def _tools(tools: list[Any], target: Target) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type", "custom") != "custom":
            raise refuse(f"tools[{i}]", target, f"Anthropic's {tool.get('type')} tool is not translated")
        extra = sorted(k for k in set(tool) - _TOOL_KEYS if tool[k] is not None)
        if extra:
            raise refuse(f"tools[{i}].{extra[0]}", target, "it has no counterpart on the Responses API")
        out.append(wire.function_tool(tool.get("name"), tool.get("description"),
                                      tool.get("input_schema"), tool.get("strict")))
    return out


def _tool_choice(choice: dict[str, Any], out: dict[str, Any], target: Target) -> None:
    kind = choice.get("type")
    if kind in ("auto", "none"):
        out["tool_choice"] = kind
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "name": choice.get("name")}
    else:
        raise refuse("tool_choice", target, f"a {kind} choice has no counterpart there")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def _reasoning_options(body: dict[str, Any], out: dict[str, Any], target: Target) -> None:
    """`thinking`, `output_config` (effort, format) and the beta `output_format`."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        # Summaries to show as thinking, and the encrypted reasoning to send back.
        out["reasoning"] = {"summary": "auto"}
        if thinking.get("type") == "enabled":
            out["reasoning"]["effort"] = effort(thinking.get("budget_tokens"))
        out["include"] = ["reasoning.encrypted_content"]
    config = wire.obj(body.get("output_config"))
    for key in sorted(set(config) - {"effort", "format"}):
        raise refuse(f"output_config.{key}", target, "it has no counterpart there")
    if config.get("effort") is not None:
        if config["effort"] not in _EFFORTS:
            raise refuse("output_config.effort", target, "the Responses API's efforts are "
                         + ", ".join(_EFFORTS))
        out.setdefault("reasoning", {})["effort"] = config["effort"]
    for name, fmt in (("output_format", body.get("output_format")),
                      ("output_config.format", config.get("format"))):
        if fmt is None:
            continue
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise refuse(name, target, "only a JSON schema format is translated")
        # Anthropic's structured outputs always follow the schema: strict.
        out["text"] = {"format": {"type": "json_schema", "name": "output",
                                  "schema": fmt.get("schema"), "strict": True}}


def _context_management(value: Any, target: Target) -> None:
    """Claude Code sends `clear_thinking` with `keep: all` every turn: keeping every
    thinking block asks for nothing (the backend gets the history as it is), so it is
    passed over. Any edit that would clear something is refused."""
    if value is None:
        return
    extra = set(wire.obj(value)) - {"edits"}
    if not isinstance(value, dict) or extra:
        raise refuse("context_management", target, "Anthropic's context editing is not translated")
    for i, edit in enumerate(value.get("edits") or []):
        kind = str(wire.obj(edit).get("type") or "")
        if not (kind.startswith("clear_thinking_") and edit.get("keep") == "all"):
            raise refuse(f"context_management.edits[{i}]", target,
                         "Anthropic's context editing is not translated")


class MessagesToResponses(Translator):
    client = Operation.MESSAGES
    backend = Operation.RESPONSES
    counts_prompt = True  # message_start carries the input count

    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        for key, value in body.items():
            if key not in _MAPPED:
                raise refuse(key, target, "it is not a Messages field the gateway translates")
            if key in _NEUTRAL and value not in _NEUTRAL[key][0]:
                raise refuse(key, target, _NEUTRAL[key][1])
        out: dict[str, Any] = {"input": _input(body.get("messages") or [], target)}
        if (instructions := _system(body.get("system"), target)) is not None:
            out["instructions"] = instructions
        out.update({k: body[k] for k in _SAME if body.get(k) is not None})
        wire.sampling(body, out)
        limit = body.get("max_tokens")
        out["max_output_tokens"] = wire.max_output(limit if isinstance(limit, int)
                                                   else target.default_max_tokens)
        if body.get("tools"):
            out["tools"] = _tools(body["tools"], target)
        if isinstance(body.get("tool_choice"), dict):
            _tool_choice(body["tool_choice"], out, target)
        if body.get("service_tier") is not None:
            if body["service_tier"] not in _TIERS:
                raise refuse("service_tier", target, "it has no counterpart there")
            out["service_tier"] = _TIERS[body["service_tier"]]
        _reasoning_options(body, out, target)
        _context_management(body.get("context_management"), target)
        return wire.fixed(out)

    def response(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return answer(body, target)

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return MessagesStream(target)


TRANSLATOR = MessagesToResponses()
