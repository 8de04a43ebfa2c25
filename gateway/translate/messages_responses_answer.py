"""The answer side of `messages_responses`: a Responses backend's whole answer as an
Anthropic message, and its event stream as Anthropic's events (message_start with the
prompt's real count, content blocks opened, filled and closed in order, message_delta
with the real usage, message_stop).

Reasoning crosses as thinking blocks that can go back: a reasoning item's encrypted
content is the block's signature (or a redacted_thinking block's data when it shows no
summary), marked as ours (`MARK`), and `messages_responses` makes it the reasoning item
again on the next turn. Stop reasons and usage are docs/contract.md §8's."""

from __future__ import annotations

from typing import Any

from gateway.translate import responses_wire as wire
from gateway.translate.base import Event, StreamTranslator, Target

# A signature (or redacted data) that holds a Responses reasoning item's encrypted
# content; Claude's own signatures never start so.
MARK = "oai-reasoning:"


def answer(body: dict[str, Any], target: Target) -> dict[str, Any]:
    """A whole Responses answer as a message."""
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


# What opens a stream: response.created, or in_progress from a server that skips it.
_OPENING = ("response.created", "response.in_progress")


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
        if kind in _OPENING and isinstance(event.get("response"), dict):
            return [] if self.started else self._message_start(event["response"])
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
