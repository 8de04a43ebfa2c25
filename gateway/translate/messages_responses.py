"""An Anthropic Messages client (Claude Code, the anthropic SDK) on a Responses backend
(models Azure serves only on the Responses API): the Messages request as a Responses
request, the response as a message, and its event stream as Anthropic's events
(message_start with the prompt's real count, content blocks opened, filled and closed
in order, message_delta with the real usage, message_stop).

Reasoning crosses as thinking blocks that can go back: a reasoning item's encrypted
content is the block's signature (or a redacted_thinking block's data when it shows no
summary), marked as ours, and becomes the reasoning item again on the next turn.
The field table is docs/contract.md §8."""

from __future__ import annotations

from typing import Any

from gateway.core.operations import Operation
from gateway.translate import responses_wire as wire
from gateway.translate.base import Event, StreamTranslator, Target, Translator, refuse

# A signature (or redacted data) that holds a Responses reasoning item's encrypted
# content; Claude's own signatures never start so.
MARK = "oai-reasoning:"
_NEUTRAL: dict[str, tuple[tuple[Any, ...], str]] = {
    "top_k": ((None,), "the Responses API has no top_k"),
    "stop_sequences": ((None, []), "the Responses API has no stop sequences"),
    "container": ((None,), "containers belong to Anthropic's code execution tool"),
    "mcp_servers": ((None, []), "Anthropic's MCP connector is not translated"),
    "context_management": ((None,), "Anthropic's context management is not translated"),
}
_SAME = ("temperature", "top_p", "stream", "metadata")
_MAPPED = frozenset({"model", "messages", "system", "max_tokens", "tools", "tool_choice",
                     "thinking", "service_tier", "output_format", *_SAME, *_NEUTRAL})
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


def _input(messages: list[Any], target: Target) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role, content = message.get("role"), message.get("content")
        extra = set(message) - {"role", "content"}
        if extra:
            raise refuse(f"{where}.{sorted(extra)[0]}", target, "it has no counterpart there")
        if role not in ("user", "assistant"):
            raise refuse(f"{where}.role", target, f"a {role} message has no counterpart there")
        if isinstance(content, str):
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


class MessagesToResponses(Translator):
    client = Operation.MESSAGES
    backend = Operation.RESPONSES

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
        limit = body.get("max_tokens")
        out["max_output_tokens"] = wire.max_output(limit if isinstance(limit, int)
                                                   else target.default_max_tokens)
        if body.get("tools"):
            out["tools"] = _tools(body["tools"], target)
        if isinstance(body.get("tool_choice"), dict):
            _tool_choice(body["tool_choice"], out, target)
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            # Summaries to show as thinking, and the encrypted reasoning to send back.
            out["reasoning"] = {"summary": "auto"}
            if thinking.get("type") == "enabled":
                out["reasoning"]["effort"] = effort(thinking.get("budget_tokens"))
            out["include"] = ["reasoning.encrypted_content"]
        if body.get("service_tier") is not None:
            if body["service_tier"] not in _TIERS:
                raise refuse("service_tier", target, "it has no counterpart there")
            out["service_tier"] = _TIERS[body["service_tier"]]
        output_format = body.get("output_format")
        if isinstance(output_format, dict):
            if output_format.get("type") != "json_schema":
                raise refuse("output_format", target, "only a JSON schema format is translated")
            # Anthropic's structured outputs always follow the schema: strict.
            out["text"] = {"format": {"type": "json_schema", "name": "output",
                                      "schema": output_format.get("schema"), "strict": True}}
        return wire.fixed(out)

    def response(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        ended = wire.ending(body)
        if ended == "failed":
            raise wire.failed(body)
        content: list[dict[str, Any]] = []
        refused = called = False
        for item in body.get("output") or []:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "message":
                for part, text in wire.message_parts(item):
                    refused = refused or part == "refusal"
                    content.append({"type": "text", "text": text})
            elif kind == "reasoning" and (block := thinking_block(item)) is not None:
                content.append(block)
            elif kind == "function_call":
                called = True
                content.append({"type": "tool_use", "id": item.get("call_id") or item.get("id"),
                                "name": item.get("name"),
                                "input": wire.arguments_object(item.get("arguments"))})
        counts = wire.counts(body.get("usage")) or wire.Counts(input=target.count_prompt())
        return {"id": message_id(body.get("id")), "type": "message", "role": "assistant",
                "model": body.get("model") or target.model, "content": content,
                "stop_reason": stop_reason(ended, called, refused), "stop_sequence": None,
                "usage": usage(counts)}

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return MessagesStream(target)


def message_id(ident: Any) -> str:
    return "msg_" + (ident if isinstance(ident, str) else "").removeprefix("resp_")


def thinking_block(item: dict[str, Any]) -> dict[str, Any] | None:
    """A reasoning item as a thinking block (its summary shown, its encrypted content the
    signature), or redacted_thinking when it shows nothing; None when it has neither
    (the client asked for no thinking, so none was returned)."""
    shown, secret = wire.reasoning_text(item), item.get("encrypted_content")
    held = MARK + secret if isinstance(secret, str) and secret else ""
    if shown:
        return {"type": "thinking", "thinking": shown, "signature": held}
    return {"type": "redacted_thinking", "data": held} if held else None


def stop_reason(ended: str, called: bool, refused: bool) -> str:
    """The table of docs/contract.md §8: completed -> end_turn (tool_use when a function
    was called, refusal when the model refused), incomplete for max_output_tokens ->
    max_tokens, for content_filter -> refusal."""
    if ended == "completed":
        return "tool_use" if called else "refusal" if refused else "end_turn"
    return "refusal" if ended == "content_filter" else "max_tokens"


def usage(c: wire.Counts) -> dict[str, Any]:
    # Anthropic's input_tokens leaves out what was read from the cache; the Responses
    # count holds it. Each cached token is counted once: in cache_read_input_tokens.
    return {"input_tokens": c.input - c.cached, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": c.cached, "output_tokens": c.output}


def error_type(code: str) -> str:
    """An upstream error code as Anthropic's error type, so that the client's SDK reads
    the same kind of failure."""
    for part, kind in (("rate_limit", "rate_limit_error"), ("overloaded", "overloaded_error"),
                       ("timeout", "timeout_error"), ("invalid", "invalid_request_error"),
                       ("context_length", "invalid_request_error")):
        if part in code:
            return kind
    return "api_error"


def _event(kind: str, body: dict[str, Any]) -> Event:
    return kind.encode(), wire.dumps({"type": kind, **body})


class MessagesStream(StreamTranslator):
    """Responses events in, Anthropic events out. One content block is open at a time
    (`open`, keyed by where it came from), numbered in the order opened."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.started = self.over = self.called = self.refused = False
        self.open: tuple[Any, ...] | None = None
        self.blocks = 0  # blocks opened so far: the next one's index
        self.thought_at: Any = None  # the summary part the open thinking block shows
        self.argued = False  # the open tool_use block got its arguments

    def _start(self, key: tuple[Any, ...], block: dict[str, Any]) -> list[Event]:
        out = self._stop()
        self.open, self.argued = key, False
        out.append(_event("content_block_start", {"index": self.blocks, "content_block": block}))
        self.blocks += 1
        return out

    def _delta(self, delta: dict[str, Any]) -> Event:
        return _event("content_block_delta", {"index": self.blocks - 1, "delta": delta})

    def _stop(self) -> list[Event]:
        if self.open is None:
            return []
        self.open = None
        return [_event("content_block_stop", {"index": self.blocks - 1})]

    def feed(self, name: bytes | None, data: bytes) -> list[Event]:
        event = wire.loads(data)
        if self.over:
            return []
        kind, index = event.get("type"), event.get("output_index")
        item = wire.obj(event.get("item"))
        delta = event.get("delta")
        if kind == "response.created" and isinstance(event.get("response"), dict):
            return self._message_start(event["response"])
        if kind in ("response.output_text.delta", "response.refusal.delta") and isinstance(delta, str):
            key = ("text", index, event.get("content_index"))
            out = [] if self.open == key else self._start(key, {"type": "text", "text": ""})
            self.refused = self.refused or kind == "response.refusal.delta"
            return [*out, self._delta({"type": "text_delta", "text": delta})]
        if kind == "response.content_part.added" and isinstance(event.get("part"), dict) \
                and event["part"].get("type") in ("output_text", "refusal"):
            return self._start(("text", index, event.get("content_index")), {"type": "text", "text": ""})
        if kind == "response.content_part.done":
            return self._stop() if self.open == ("text", index, event.get("content_index")) else []
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta") \
                and isinstance(delta, str):
            at = (kind, event.get("summary_index", event.get("content_index")))
            out = [] if self.open == ("thinking", index) else \
                self._start(("thinking", index), {"type": "thinking", "thinking": "", "signature": ""})
            gap = wire.SEPARATOR if out == [] and self.thought_at != at else ""
            self.thought_at = at
            return [*out, self._delta({"type": "thinking_delta", "thinking": gap + delta})]
        if kind == "response.output_item.added" and item.get("type") == "function_call":
            self.called = True
            out = self._start(("call", index), {"type": "tool_use", "input": {},
                                                "id": item.get("call_id") or item.get("id"),
                                                "name": item.get("name")})
            return out + self._arguments(index, item.get("arguments"))
        if kind == "response.function_call_arguments.delta":
            return self._arguments(index, delta)
        if kind == "response.output_item.done":
            return self._item_done(index, item)
        if kind in ("response.completed", "response.incomplete") and isinstance(event.get("response"), dict):
            return self._end(event["response"])
        if kind == "response.failed" and isinstance(event.get("response"), dict):
            return self._fail(event["response"])
        if kind == "error":
            return self._fail(event)
        return []  # in_progress, summary parts, *.done repeating what was sent

    def _message_start(self, response: dict[str, Any]) -> list[Event]:
        self.started = True
        # Claude Code reads the prompt's size here only, before any text: the real count
        # in the backend model's tokenizer, corrected by message_delta at the end.
        message: dict[str, Any] = {
            "id": message_id(response.get("id")), "type": "message", "role": "assistant",
            "model": response.get("model") or self.target.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": usage(wire.Counts(input=self.target.count_prompt()))}
        return [_event("message_start", {"message": message})]

    def _arguments(self, index: Any, piece: Any) -> list[Event]:
        if self.open != ("call", index) or not isinstance(piece, str) or not piece:
            return []
        self.argued = True
        return [self._delta({"type": "input_json_delta", "partial_json": piece})]

    def _item_done(self, index: Any, item: dict[str, Any]) -> list[Event]:
        kind = item.get("type")
        if kind == "function_call" and self.open == ("call", index):
            # Arguments that came only whole, never as deltas, still reach the client.
            out = [] if self.argued else self._arguments(index, item.get("arguments"))
            return out + self._stop()
        if kind == "reasoning":
            block = thinking_block(item)
            if self.open == ("thinking", index):
                signature = block.get("signature") if block else None
                out = [self._delta({"type": "signature_delta", "signature": signature})] if signature else []
                return out + self._stop()
            if block is not None and block["type"] == "redacted_thinking":
                return self._start(("redacted", index), block) + self._stop()
            return []
        return self._stop() if self.open is not None and self.open[1] == index else []

    def _end(self, response: dict[str, Any]) -> list[Event]:
        self.over = True
        counts = wire.counts(response.get("usage"))
        reason = stop_reason(wire.ending(response), self.called, self.refused)
        delta = {"delta": {"stop_reason": reason, "stop_sequence": None},
                 "usage": usage(counts) if counts is not None else {"output_tokens": 0}}
        return [*self._stop(), _event("message_delta", delta), _event("message_stop", {})]

    def _fail(self, holder: dict[str, Any]) -> list[Event]:
        self.over = True
        code, message = wire.error_of(holder)
        return [_event("error", {"error": {"type": error_type(code), "message": message}})]

    def close(self) -> list[Event]:
        if not self.started or self.over:
            return []  # nothing at all is the relay's to report; an ending was sent
        return self._fail({"error": {"code": "upstream_error",
                                     "message": "The upstream stream ended before the response did."}})


TRANSLATOR = MessagesToResponses()
