"""An Anthropic Messages client on a Chat Completions backend (Claude Code or the
anthropic SDK on a GPT, Mistral or Llama alias): the Messages request in chat's shape,
the chat answer and its stream back as Anthropic's, event by event (message_start with
the prompt's count first, blocks opened and closed in order, message_delta with the
backend's usage last). Every Messages field is mapped, refused, or passed over with
its reason written beside it (the *_PASSED tables; docs/contract.md §8)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.core.errors import UpstreamError
from gateway.core.operations import Operation
from gateway.translate.anthropic_chat import (
    CACHE_PASSED,
    CHAT_TIERS,
    TO_STOP,
    anthropic_usage,
    chat_tools,
    document_part,
    effort_of,
    event,
    image_part,
    obj,
    parse_event,
    screen,
    tool_call,
)
from gateway.translate.base import Event, StreamTranslator, Target, Translator, refuse

MAPPED = frozenset({
    "model", "messages", "system", "max_tokens", "stream", "tools", "tool_choice", "temperature",
    "top_p", "stop_sequences", "metadata", "thinking", "service_tier", "output_format",
    "output_config", "context_management",
})
PASSED: dict[str, str] = {}
REFUSED = {
    "top_k": "Chat Completions has no top_k",
    "container": "code-execution containers live on Anthropic's side",
    "mcp_servers": "Anthropic's MCP connector calls the servers from Anthropic's side",
}
THINKING_PASSED = {"display": "whether Claude shows its thinking text; a chat backend's reasoning "
                              "is returned as it comes, as it is whether or not thinking was asked for"}
EFFORTS = ("low", "medium", "high")
BLOCK_PASSED = {**CACHE_PASSED, "citations": "chat backends do not cite documents"}
TOOL_USE_PASSED = {**BLOCK_PASSED, "caller": "who made the call; a chat model makes every call itself "
                                             "(calls from Anthropic's code execution need that server "
                                             "tool, which is refused)"}
# OpenAI's reasoning models refuse max_tokens and want max_completion_tokens; other chat
# backends (Azure AI inference, Mistral) know only max_tokens. The translator is not
# told the backend's provider, so the model's name decides.
_COMPLETION_LIMIT = re.compile(r"(?:^|/)(?:o\d|gpt-5)")


class MessagesToChat(Translator):
    client = Operation.MESSAGES
    backend = Operation.CHAT
    counts_prompt = True  # message_start carries the input count

    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        screen(body, MAPPED, PASSED, REFUSED, "", target)
        messages = _system(body.get("system"), target)
        turns = body.get("messages") or []
        for i, message in enumerate(turns):
            messages += _message(message, f"messages[{i}]", target)
        if turns and isinstance(turns[-1], dict) and turns[-1].get("role") == "assistant":
            raise refuse(f"messages[{len(turns) - 1}]", target, "a final assistant turn is a prefill "
                         "Claude continues; a chat backend would answer it with a new message")
        out: dict[str, Any] = {"messages": messages}
        limit = "max_completion_tokens" if _COMPLETION_LIMIT.search(target.model) else "max_tokens"
        out[limit] = body.get("max_tokens")
        for name in ("temperature", "top_p"):
            if body.get(name) is not None:
                out[name] = body[name]
        if body.get("stop_sequences"):
            out["stop"] = list(body["stop_sequences"])
        chat_tools(body, out, target)
        metadata = body.get("metadata")
        if isinstance(metadata, dict):
            screen(metadata, frozenset({"user_id"}), {}, {}, "metadata", target)
            if isinstance(metadata.get("user_id"), str):
                out["user"] = metadata["user_id"]
        _thinking(body, out, target)
        _context_management(body.get("context_management"), target)
        tier = body.get("service_tier")
        if tier is not None:
            if tier not in CHAT_TIERS:
                raise refuse("service_tier", target, "the tiers are auto and standard_only")
            out["service_tier"] = CHAT_TIERS[tier]
        config = obj(body.get("output_config"))
        for name, fmt in (("output_format", body.get("output_format")),
                          ("output_config.format", config.get("format"))):
            if fmt is None:
                continue
            if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" \
                    or not isinstance(fmt.get("schema"), dict):
                raise refuse(name, target, "only a json_schema output format maps")
            # Anthropic's structured outputs always hold to the schema: strict on chat.
            out["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "output", "schema": fmt["schema"], "strict": True}}
        if body.get("stream") is True:
            out["stream"] = True
            out["stream_options"] = {"include_usage": True}  # Anthropic's streams always end with it
        return out

    def response(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        message = obj(choice.get("message"))
        content: list[dict[str, Any]] = []
        # A reasoning backend's reasoning (DeepSeek's, vLLM's reasoning parsers) is carried
        # whether or not the client asked for thinking: it was generated and is paid for.
        # It has no signature; sent back, it is passed over (see _assistant).
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        blocks = _thinking_blocks(message.get("thinking_blocks"))
        if blocks:  # a backend that carries Claude's blocks (a gateway like this one): as they are
            content += blocks
        elif isinstance(reasoning, str) and reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
        text = message.get("content")
        if isinstance(text, list):  # some servers answer in parts
            text = "".join(str(p.get("text") or "") for p in text if isinstance(p, dict))
        if isinstance(text, str) and text:
            content.append({"type": "text", "text": text})
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            content.append({"type": "text", "text": refusal})
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                content.append({"type": "tool_use", "id": call.get("id") or _call_id(target, len(content)),
                                "name": function.get("name"), "input": _input(function.get("arguments"))})
        finish = choice.get("finish_reason")
        stop = TO_STOP.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
        out: dict[str, Any] = {
            "id": body.get("id") or "msg_" + target.request_id, "type": "message", "role": "assistant",
            "model": body.get("model") or target.model, "content": content,
            "stop_reason": "refusal" if refusal else stop,
            "stop_sequence": None,
        }
        # Without the backend's usage there is none here either: the gateway then counts
        # the prompt and the answer itself.
        if isinstance(body.get("usage"), dict):
            out["usage"] = anthropic_usage(body["usage"])
        return out

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return MessagesStream(target)


def _thinking(body: dict[str, Any], out: dict[str, Any], target: Target) -> None:
    """`thinking` and `output_config.effort` -> `reasoning_effort`: an enabled budget by the
    table, adaptive thinking none (the model decides how much it reasons, as a chat model
    does by default), an effort as it is (it wins over a budget, as on Anthropic)."""
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if not isinstance(thinking, dict) or kind not in ("enabled", "adaptive", "disabled"):
            raise refuse("thinking", target, "thinking is enabled (with a budget), adaptive or disabled")
        screen(thinking, frozenset({"type", "budget_tokens"}), THINKING_PASSED, {}, "thinking", target)
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            out["reasoning_effort"] = effort_of(budget if isinstance(budget, int) else 0)
    config = body.get("output_config")
    if config is None:
        return
    if not isinstance(config, dict):
        raise refuse("output_config", target, "output_config is an object")
    screen(config, frozenset({"effort", "format"}), {}, {}, "output_config", target)
    effort = config.get("effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise refuse("output_config.effort", target, "chat's reasoning efforts are "
                         + ", ".join(EFFORTS))
        out["reasoning_effort"] = effort


def _context_management(value: Any, target: Target) -> None:
    """Claude Code sends `clear_thinking` edits every turn. A chat backend never gets
    Claude's thinking (see _assistant): whatever they keep, there is none to clear, so
    they are passed over. Any other edit (clearing tool uses) is refused."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise refuse("context_management", target, "context_management is an object")
    screen(value, frozenset({"edits"}), {}, {}, "context_management", target)
    edits = value.get("edits") or []
    for i, edit in enumerate(edits if isinstance(edits, list) else [None]):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if not (isinstance(kind, str) and kind.startswith("clear_thinking_")):
            raise refuse(f"context_management.edits[{i}]", target, "a chat backend cannot clear "
                         "context on its side; only clearing thinking, which it never gets, is "
                         "passed over")


def _system(system: Any, target: Target, where: str = "system") -> list[dict[str, Any]]:
    """The top-level `system`, or a `system` message's content: one chat system message
    (a string, or text parts when several blocks)."""
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if system is None:
        return []
    if not isinstance(system, list):
        raise refuse(where, target, "system is a string or a list of text blocks")
    parts = []
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise refuse(f"{where}[{j}]", target, "system blocks are text blocks")
        screen(block, frozenset({"type", "text"}), BLOCK_PASSED, {}, f"{where}[{j}]", target)
        parts.append({"type": "text", "text": block.get("text")})
    if not parts:
        return []
    return [{"role": "system", "content": parts[0]["text"] if len(parts) == 1 else parts}]


def _message(message: Any, where: str, target: Target) -> list[dict[str, Any]]:
    """One Anthropic message -> chat messages: a user turn's tool_result blocks become tool
    messages first, in order, then the rest of the turn one user message (images a tool
    returned go there: chat tool messages carry text only); an assistant turn one message,
    its tool_use blocks as tool_calls with their ids."""
    role = message.get("role") if isinstance(message, dict) else None
    if not isinstance(message, dict) or role not in ("user", "assistant", "system"):
        raise refuse(f"{where}.role", target, "Messages turns are user, assistant or system")
    screen(message, frozenset({"role", "content"}), {}, {}, where, target)
    content = message.get("content")
    if role == "system":  # Claude Code's mid-conversation instructions: chat takes them where they stand
        return _system(content, target, f"{where}.content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise refuse(f"{where}.content", target, "content is a string or a list of blocks")
    if role == "assistant":
        return [_assistant(content, where, target)]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        here = f"{where}.content[{j}]"
        if isinstance(block, dict) and block.get("type") == "tool_result":
            screen(block, frozenset({"type", "tool_use_id", "content"}),
                   {**BLOCK_PASSED, "is_error": "chat tool messages have no error flag; the result's "
                                                "own text says what failed"}, {}, here, target)
            texts, images = _result(block.get("content"), here, target)
            tools.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": texts})
            parts += images
        else:
            parts.append(_part(block, here, target))
    out = tools
    if parts:
        single = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if single else parts})
    return out


def _part(block: Any, where: str, target: Target) -> dict[str, Any]:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(block, dict):
        raise refuse(where, target, "a content block is an object")
    if kind == "text":
        screen(block, frozenset({"type", "text"}), BLOCK_PASSED, {}, where, target)
        return {"type": "text", "text": block.get("text")}
    if kind == "image":
        screen(block, frozenset({"type", "source"}), BLOCK_PASSED, {}, where, target)
        return image_part(block, where, target)
    if kind == "document":
        passed = {**BLOCK_PASSED, "context": "document context is for Anthropic's citations"}
        screen(block, frozenset({"type", "source", "title"}), passed, {}, where, target)
        return document_part(block, where, target)
    raise refuse(f"{where}.type", target, f"a {kind!r} block has no Chat Completions counterpart")


Parts = list[dict[str, Any]]


def _result(content: Any, where: str, target: Target) -> tuple[str | Parts, Parts]:
    """A tool_result's content -> (the tool message's text, the images it returned)."""
    if isinstance(content, str) or content is None:
        return content or "", []
    if not isinstance(content, list):
        raise refuse(f"{where}.content", target, "a tool result is a string or a list of blocks")
    parts = [_part(block, f"{where}.content[{k}]", target) for k, block in enumerate(content)]
    texts = [p for p in parts if p["type"] == "text"]
    images = [p for p in parts if p["type"] != "text"]
    return (texts[0]["text"] if len(texts) == 1 else texts or ""), images


def _assistant(content: list[Any], where: str, target: Target) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict):
            raise refuse(here, target, "a content block is an object")
        if kind == "text":
            screen(block, frozenset({"type", "text"}), BLOCK_PASSED, {}, here, target)
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            screen(block, frozenset({"type", "id", "name", "input"}), TOOL_USE_PASSED, {}, here, target)
            calls.append(tool_call(block))
        elif kind in ("thinking", "redacted_thinking"):
            # Passed over: a chat model cannot read Claude's signed thinking, and chat
            # backends take no reasoning in their input (DeepSeek refuses it).
            continue
        else:
            raise refuse(f"{here}.type", target, f"a {kind!r} block has no Chat Completions counterpart")
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    return out


def _thinking_blocks(blocks: Any) -> list[dict[str, Any]]:
    """Claude's thinking blocks on a chat answer (`thinking_blocks`, as this gateway's
    chat_messages gives them), without the `index` a stream numbers them by."""
    return [{k: v for k, v in b.items() if k != "index"} for b in blocks or []
            if isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking")] \
        if isinstance(blocks, list) else []


def _input(arguments: Any) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError("The backend's model called a tool with arguments that are not a JSON "
                            "object, which an Anthropic tool_use cannot hold.")
    return value


def _call_id(target: Target, n: int) -> str:
    """An id for a tool call the backend gave none (Anthropic's tool_result must name it)."""
    return f"toolu_{target.request_id}_{n}"


# --- the stream -------------------------------------------------------------------------
class MessagesStream(StreamTranslator):
    """Chat chunks -> Claude's events: message_start at the first chunk (with the prompt's
    count: Claude Code reads input usage only there), one block per run of text, reasoning
    or a tool call (content_block_start, deltas, content_block_stop), and at the chat
    stream's end message_delta (stop reason, the backend's usage) and message_stop."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.started = self.done = self.refused = False
        self.open: str | None = None  # the kind of the block now open
        self.index = -1  # the last block opened
        self.calls: dict[int, int] = {}  # chat tool-call index -> block index
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.deltas = 0  # pieces of output sent, for a backend that reports no usage

    def feed(self, name: bytes | None, data: bytes) -> list[Event]:
        if self.done:
            return []
        if data == b"[DONE]":
            return self._end()
        chunk = parse_event(data)
        out: list[Event] = []
        if isinstance(chunk.get("error"), dict) and not chunk.get("choices"):
            self.done = True
            error = chunk["error"]
            return [event("error", {"type": "error", "error": {
                "type": "api_error", "message": str(error.get("message") or "The upstream stream failed.")}})]
        if not self.started:
            out += self._start(chunk)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out += self._choice(choice)
        return out

    def _start(self, chunk: dict[str, Any]) -> list[Event]:
        self.started = True
        ident = chunk.get("id") or ""
        model = chunk.get("model") or self.target.model
        usage = {"input_tokens": self.target.count_prompt(), "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0, "output_tokens": 1}
        self.id = ident if isinstance(ident, str) and ident else "msg_" + self.target.request_id
        return [event("message_start", {"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}})]

    def _choice(self, choice: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        delta = obj(choice.get("delta"))
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out.append(self._delta(self.index, {"type": "thinking_delta", "thinking": reasoning}))
        for block in _thinking_blocks(delta.get("thinking_blocks")):
            out += self._whole_thought(block)
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                self.refused = self.refused or key == "refusal"
                out += self._open("text", {"type": "text", "text": ""})
                out.append(self._delta(self.index, {"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            number = call["index"] if isinstance(call.get("index"), int) else 0
            function = obj(call.get("function"))
            if number not in self.calls:
                out += self._open("tool_use", {"type": "tool_use", "id": call.get("id") or _call_id(
                    self.target, number), "name": function.get("name"), "input": {}}, force=True)
                self.calls[number] = self.index
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                # Pieces of a call that is no longer the open block (a backend that
                # interleaves calls) still go to that call's block.
                out.append(self._delta(self.calls[number],
                                       {"type": "input_json_delta", "partial_json": arguments}))
        if isinstance(choice.get("finish_reason"), str):
            self.finish = choice["finish_reason"]
            out += self._close()
        return out

    def _whole_thought(self, block: dict[str, Any]) -> list[Event]:
        """A whole thinking block on a chunk (a backend that carries Claude's blocks): the
        signature of the thinking just streamed, or a block of its own; each ends its block."""
        if block["type"] == "redacted_thinking":
            out = self._open("redacted_thinking", block, force=True)
        else:
            out = []
            if self.open != "thinking":
                out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out.append(self._delta(self.index, {"type": "thinking_delta",
                                                    "thinking": str(block.get("thinking") or "")}))
            if block.get("signature"):
                out.append(self._delta(self.index, {"type": "signature_delta",
                                                    "signature": str(block["signature"])}))
        return out + self._close()

    def _open(self, kind: str, block: dict[str, Any], force: bool = False) -> list[Event]:
        if self.open == kind and not force:
            return []
        out = self._close()
        self.index += 1
        self.open = kind
        out.append(event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                 "content_block": block}))
        return out

    def _delta(self, index: int, delta: dict[str, Any]) -> Event:
        self.deltas += 1
        return event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _close(self) -> list[Event]:
        if self.open is None:
            return []
        self.open = None
        return [event("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _end(self) -> list[Event]:
        if not self.started:
            return []
        self.done = True
        out = self._close()
        # The backend's counts, all of them, so that they replace message_start's
        # estimate; without them, the pieces sent (a chat backend streams about a token
        # a chunk), the prompt's count left as message_start gave it.
        usage: dict[str, Any] = anthropic_usage(self.usage) if self.usage is not None \
            else {"output_tokens": self.deltas}
        reason = "refusal" if self.refused else TO_STOP.get(self.finish or "stop", "end_turn")
        out.append(event("message_delta", {"type": "message_delta",
                                           "delta": {"stop_reason": reason, "stop_sequence": None},
                                           "usage": usage}))
        out.append(event("message_stop", {"type": "message_stop"}))
        return out

    def close(self) -> list[Event]:
        return self._end() if not self.done else []


TRANSLATOR = MessagesToChat()
