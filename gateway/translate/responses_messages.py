"""A Responses client (Codex, the openai-agents SDK, `client.responses.create`) on a
backend that speaks Anthropic's Messages API (Claude, on Anthropic or Foundry): the
request as Messages turns, the answer and its stream as a Response and its event
sequence (`responses_stream`). Claude's thinking blocks become reasoning items whose
`encrypted_content` carries the block with its signature (`opaque`), so that a tool loop
gives Claude its blocks back unchanged. The table is docs/contract.md §8."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from gateway.core.operations import Operation
from gateway.translate import opaque
from gateway.translate.base import Event, StreamTranslator, Target, refuse
from gateway.translate.bound import Answers
from gateway.translate.responses_input import Entry, Part, Request, read
from gateway.translate.responses_stream import ResponseBuilder, obj, response_id, skeleton, usage

API = "Anthropic Messages"
# stop_reason -> (Responses status, incomplete_details.reason).
STOP: dict[str | None, tuple[str, str | None]] = {
    "end_turn": ("completed", None),
    "tool_use": ("completed", None),
    "stop_sequence": ("completed", None),
    "pause_turn": ("completed", None),  # server tools only, which are refused
    "max_tokens": ("incomplete", "max_output_tokens"),
    "model_context_window_exceeded": ("incomplete", "max_output_tokens"),
    "refusal": ("incomplete", "content_filter"),
}
# reasoning.effort -> Claude's thinking budget (tokens); none and minimal: no thinking.
BUDGETS: dict[str, int | None] = {"none": None, "minimal": None, "low": 1024, "medium": 4096,
                                  "high": 16384, "xhigh": 32768}
MIN_BUDGET = 1024  # the smallest budget Claude accepts


class ResponsesToMessages(Answers):
    client: ClassVar[Operation] = Operation.RESPONSES
    backend: ClassVar[Operation] = Operation.MESSAGES

    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        req = read(body, target, API)
        if req.format is not None:
            raise refuse("text.format", target, f"{API} has no structured-output format to carry it")
        system, turns = turns_of(req, target)
        out: dict[str, Any] = {"messages": turns, **_limits(req, target)}
        if system:
            out["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": s}
                                                                 for s in system]
        if body.get("stream") is True:
            out["stream"] = True
        for name, value in (("temperature", req.temperature), ("top_p", req.top_p)):
            if value is not None:
                out[name] = value
        if req.user is not None:
            out["metadata"] = {"user_id": req.user}
        if req.tools:
            out["tools"] = [{"name": t.name,
                             **({"description": t.description} if t.description is not None else {}),
                             "input_schema": t.parameters, **({"strict": True} if t.strict else {})}
                            for t in req.tools]
            choice: dict[str, Any] | None = (
                {"type": "tool", "name": req.forced} if req.forced is not None else
                      {"type": {"required": "any"}.get(req.choice, req.choice)} if req.choice else None)
            if req.parallel is False:
                choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
            if choice is not None:
                out["tool_choice"] = choice
        return out

    def answer(self, answer: dict[str, Any], request: dict[str, Any], target: Target) -> dict[str, Any]:
        builder = ResponseBuilder(response_id(target))
        model = answer.get("model")
        builder.begin(skeleton(request, target, model if isinstance(model, str) else None))
        # One output item per block; the last is closed by finish, with the stop reason's
        # status (cut short: incomplete).
        for block in answer.get("content") or []:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                builder.end_item()  # a text block after a text block is a message of its own
                builder.text(str(block["text"]))
            elif kind in ("thinking", "redacted_thinking"):
                builder.open_reasoning()
                if kind == "thinking" and block.get("thinking"):
                    builder.thinking(str(block["thinking"]))
                builder.seal(opaque.encode(opaque.CLAUDE, block))
            elif kind == "tool_use":
                builder.call(str(block.get("id")), str(block.get("name")))
                builder.arguments(orjson.dumps(block.get("input") or {}).decode())
        status, reason = STOP.get(answer.get("stop_reason"), ("completed", None))
        builder.finish(status, reason, anthropic_usage(answer.get("usage")))
        assert builder.response is not None
        return builder.response

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return MessagesStream(body, target)


def _limits(req: Request, target: Target) -> dict[str, Any]:
    """max_tokens (required by Messages) and thinking. Responses' max_output_tokens counts
    reasoning as Claude's max_tokens counts thinking: the same number. Without one, the
    deployment's default_max_tokens is for the visible answer and the thinking budget
    comes on top."""
    budget = BUDGETS.get(req.effort) if req.effort else None
    limit = req.max_output_tokens
    if budget is None:
        return {"max_tokens": limit if limit is not None else target.default_max_tokens}
    if limit is None:
        return {"max_tokens": target.default_max_tokens + budget,
                "thinking": {"type": "enabled", "budget_tokens": budget}}
    if limit <= MIN_BUDGET:
        raise refuse("reasoning.effort", target, f"max_output_tokens {limit} leaves no room for Claude's "
                     f"smallest thinking budget ({MIN_BUDGET} tokens)")
    return {"max_tokens": limit,
            "thinking": {"type": "enabled", "budget_tokens": min(budget, limit - 1)}}


def turns_of(req: Request, target: Target) -> tuple[list[str], list[dict[str, Any]]]:
    """The system texts (instructions, system and developer items, wherever they are:
    Messages has no system turn) and the user/assistant turns, one turn per run of
    entries of one side: calls and reasoning blocks are the assistant's, function
    outputs the user's (tool_result blocks first, as Messages requires)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            content = turns[-1]["content"]
            if blocks[0]["type"] == "tool_result":  # before the turn's text, after its results
                at = next((i for i, b in enumerate(content) if b["type"] != "tool_result"), len(content))
                content[at:at] = blocks
            else:
                content += blocks
        else:
            turns.append({"role": role, "content": list(blocks)})

    for entry in req.entries:
        if entry.role == "system":
            if any(p.image is not None for p in entry.parts):
                raise refuse(entry.where, target, f"{API} takes no image in the system prompt")
            system.append("".join(p.text or "" for p in entry.parts))
        elif entry.role in ("user", "assistant"):
            if entry.role == "assistant" and any(p.image is not None for p in entry.parts):
                raise refuse(entry.where, target, f"{API} takes no image in an assistant turn")
            add(entry.role, _blocks(entry.parts))
        elif entry.role == "call":
            add("assistant", [{"type": "tool_use", "id": entry.call_id, "name": entry.name,
                               "input": _arguments(entry, target)}])
        elif entry.role == "result":
            blocks = _blocks(entry.parts)
            content: str | list[dict[str, Any]] = (
                "".join(p.text or "" for p in entry.parts)
                if all(b["type"] == "text" for b in blocks) else blocks)
            add("user", [{"type": "tool_result", "tool_use_id": entry.call_id, "content": content}])
        elif entry.role == "thought":
            add("assistant", [entry.block])  # exactly as Claude made it, signature included
    return system, turns


def _arguments(entry: Entry, target: Target) -> dict[str, Any]:
    try:
        value = orjson.loads(entry.arguments or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise refuse(f"{entry.where}.arguments", target, f"{API} takes a tool call's input as a JSON object")
    return value


def _blocks(parts: list[Part]) -> list[dict[str, Any]]:
    # Messages refuses empty text blocks; an empty text says nothing to the model.
    return [{"type": "text", "text": p.text} if p.image is None else image(p.image)
            for p in parts if p.image is not None or p.text]


def image(url: str) -> dict[str, Any]:
    """An image block: a data: URL as base64 with its media type, any other URL as is."""
    if url.startswith("data:") and ";base64," in url:
        media, _, data = url[5:].partition(";base64,")
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def anthropic_usage(counts: Any) -> dict[str, Any] | None:
    """Messages usage in the Responses names. Anthropic's input_tokens exclude the cache
    reads and writes, Responses' include them: the three are added, and the cached count
    (the reads) and the written one are parts of that sum, counted once. Claude reports
    no separate thinking count."""
    if not isinstance(counts, dict) or not isinstance(counts.get("input_tokens"), int):
        return None
    read_ = _int(counts.get("cache_read_input_tokens"))
    written = _int(counts.get("cache_creation_input_tokens"))
    return usage(counts["input_tokens"] + read_ + written, read_, _int(counts.get("output_tokens")), 0,
                 written)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class MessagesStream(StreamTranslator):
    """Messages events as a Responses stream: each content block is one output item."""

    def __init__(self, body: dict[str, Any], target: Target) -> None:
        self.body, self.target = body, target
        self.builder = ResponseBuilder(response_id(target))
        self.counts: dict[str, Any] = {}
        self.reason: str | None = None
        self.block: dict[str, Any] = {}  # the thinking block being streamed, rebuilt

    def _begin(self, model: Any = None) -> list[Event]:
        return self.builder.begin(skeleton(self.body, self.target,
                                           model if isinstance(model, str) and model else None))

    def feed(self, name: bytes | None, data: bytes) -> list[Event]:
        event = orjson.loads(data)
        if not isinstance(event, dict):
            raise ValueError("not a JSON object")  # the relay ends the stream with an error
        kind = event.get("type")
        b = self.builder
        if kind == "message_start":
            message = obj(event.get("message"))
            if isinstance(message.get("usage"), dict):
                self.counts.update(message["usage"])
            return self._begin(message.get("model"))
        events = self._begin()
        if kind == "content_block_start":
            # The block before is over (its item was left open at its stop: were it the
            # last, the stop reason says whether it is complete).
            events += b.end_item()
            block = obj(event.get("content_block"))
            btype = block.get("type")
            if btype == "text" and block.get("text"):
                events += b.text(str(block["text"]))
            elif btype == "thinking":
                self.block = {"type": "thinking", "thinking": str(block.get("thinking") or ""),
                              "signature": str(block.get("signature") or "")}
                events += b.open_reasoning()
                if self.block["thinking"]:
                    events += b.thinking(self.block["thinking"])
            elif btype == "redacted_thinking":
                events += b.open_reasoning() + b.seal(opaque.encode(opaque.CLAUDE, block))
            elif btype == "tool_use":
                events += b.call(str(block.get("id")), str(block.get("name")))
                if block.get("input"):
                    events += b.arguments(orjson.dumps(block["input"]).decode())
        elif kind == "content_block_delta":
            events += self._delta(obj(event.get("delta")))
        elif kind == "content_block_stop":
            if self.block:
                events += b.seal(opaque.encode(opaque.CLAUDE, self.block))
                self.block = {}
        elif kind == "message_delta":
            delta = obj(event.get("delta"))
            if isinstance(delta.get("stop_reason"), str):
                self.reason = delta["stop_reason"]
            if isinstance(event.get("usage"), dict):  # output, and lately the input counts again
                self.counts.update({k: v for k, v in event["usage"].items() if v is not None})
        elif kind == "message_stop":
            events += self.close()
        elif kind == "error":
            error = obj(event.get("error"))
            events += b.fail(str(error.get("type") or "upstream_error"),
                             str(error.get("message") or "The backend failed."))
        return events  # ping, and events of later API versions, carry nothing to translate

    def _delta(self, delta: dict[str, Any]) -> list[Event]:
        kind, b = delta.get("type"), self.builder
        if kind == "text_delta" and delta.get("text"):
            return b.text(str(delta["text"]))
        if kind == "thinking_delta" and delta.get("thinking"):
            self.block["thinking"] = self.block.get("thinking", "") + str(delta["thinking"])
            return b.thinking(str(delta["thinking"]))
        if kind == "signature_delta":
            self.block["signature"] = self.block.get("signature", "") + str(delta.get("signature") or "")
        elif kind == "input_json_delta":
            return b.arguments(str(delta.get("partial_json") or ""))
        return []

    def close(self) -> list[Event]:
        events = self._begin()
        if self.builder.finished:
            return events
        if self.reason is None:
            return [*events, *self.builder.fail(
                "upstream_error", "The backend's stream ended before saying why it stopped.")]
        status, reason = STOP.get(self.reason, ("completed", None))
        return [*events, *self.builder.finish(status, reason, anthropic_usage(self.counts))]


TRANSLATOR = ResponsesToMessages()
