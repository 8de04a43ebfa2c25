"""Anthropic's Messages API (`/v1/messages`, Foundry's `/anthropic/v1/messages`) and
its `count_tokens`. Streams are `event: <type>` + `data: <json>`; the usage is in
`message_start` (input) and the last `message_delta` (output, cumulative: it
replaces, it does not add). Errors on these routes are Anthropic's shape
(`gateway.core.errors`, flavour ANTHROPIC)."""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from gateway.apis.base import Api, JsonObject, ModelRoute, StoresNothing
from gateway.apis.shapes import as_int, items, loads, named_event, schema_slots, string_slots
from gateway.core.errors import anthropic_type
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies import Usage
from policies.wire import Results, Slot, Text

# Generated text in a raw event: text, tool-input JSON and thinking deltas.
_OUTPUT = re.compile(rb'"(?:text|partial_json|thinking)"\s*:\s*"((?:[^"\\]|\\.)*)"')
PER_MESSAGE = 4
REPLY_PRIMING = 3
KNOWN = frozenset({
    "model", "messages", "system", "max_tokens", "stream", "tools", "tool_choice", "temperature",
    "top_p", "top_k", "stop_sequences", "metadata", "thinking", "service_tier", "container",
    "mcp_servers", "context_management", "output_format",
})


class MessagesBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    messages: list[JsonObject]
    system: StrictStr | list[JsonObject] | None = None
    max_tokens: StrictInt
    stream: StrictBool | None = None
    tools: list[JsonObject] | None = None


class CountTokensBody(MessagesBody):
    max_tokens: StrictInt | None = None  # type: ignore[assignment]


class Messages(StoresNothing, Api):
    name = "messages"
    FINISH = re.compile(rb'"stop_reason":\s*"(\w{1,40})"')

    def answer_facts(self, body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        model, reason = body.get("model"), body.get("stop_reason")
        return (model if isinstance(model, str) else "",
                (reason,) if isinstance(reason, str) else ())
    operation = Operation.MESSAGES
    gen_ai_operation = "chat"
    generates = True
    Body: ClassVar[type[BaseModel]] = MessagesBody
    known = KNOWN

    # --- prompt -----------------------------------------------------------------------
    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        slots: list[Slot] = []
        system = body.get("system")
        if isinstance(system, str):
            slots.append((body, "system"))
        elif isinstance(system, list):
            for block in system:
                if isinstance(block, dict):
                    _block_texts(block, slots)
        for message in items(body.get("messages")):
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                slots.append((message, "content"))
            elif isinstance(content, list):
                for block in content:
                    if isinstance(block, dict):
                        _block_texts(block, slots)
        for tool in items(body.get("tools")):
            if isinstance(tool, dict):
                for key in ("name", "description"):
                    if isinstance(tool.get(key), str):
                        slots.append((tool, key))
                if isinstance(tool.get("input_schema"), dict):
                    schema_slots(tool["input_schema"], slots)
        return slots

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return [body.get("system"), body.get("messages"), body.get("tools")]

    def prompt_framing(self, body: dict[str, Any]) -> int:
        messages = body.get("messages")
        return PER_MESSAGE * (len(messages) if isinstance(messages, list) else 0) + REPLY_PRIMING

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        limit = body.get("max_tokens")
        return limit if isinstance(limit, int) else None

    # --- whole answers ----------------------------------------------------------------
    def usage(self, body: dict[str, Any]) -> Usage | None:
        return anthropic_usage(body.get("usage"), None)

    def answer_error(self, body: dict[str, Any]) -> bool:
        return body.get("type") == "error"

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        texts: list[Text] = []
        content = body.get("content")
        for i, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(Text(i, (block, "text")))
            elif block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
                slots: list[Slot] = []
                string_slots(block["input"], slots)
                texts += [Text(i, slot) for slot in slots]
        return texts

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        content = body.get("content")
        if isinstance(content, list) and isinstance(key, int) and key < len(content):
            content[key] = {"type": "text", "text": ""}  # in place: later keys keep their index
        body["stop_reason"] = "refusal"

    # --- streams ----------------------------------------------------------------------
    def stream_usage(self, event: dict[str, Any], usage: Usage | None) -> Usage | None:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            return anthropic_usage(event["message"].get("usage"), None) or usage
        if kind == "message_delta":
            return anthropic_usage(event.get("usage"), usage) or usage
        return usage

    def output_text(self, data: bytes) -> list[bytes]:
        return _OUTPUT.findall(data)

    def encode(self, name: bytes | None, data: bytes) -> bytes:
        return named_event(name, data)

    def stream_delta(self, event: dict[str, Any]) -> Text | None:
        delta = event.get("delta")
        if event.get("type") != "content_block_delta" or not isinstance(delta, dict):
            return None
        index = as_int(event.get("index"))
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            return Text(index, (delta, "text"))
        if delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str) \
                and delta["partial_json"]:
            return Text((index, "json"), (delta, "partial_json"))
        return None

    def is_keepalive(self, event: dict[str, Any]) -> bool:
        return event.get("type") == "ping"

    def blocked_end(self, first: bytes, last: bytes, result: Results) -> bytes:
        """The block that was open is closed, then the message ends with stop_reason
        `refusal`, as Anthropic's own refusals end."""
        try:
            previous = loads(last) if last else {}
        except orjson.JSONDecodeError:
            previous = {}
        out = b""
        if previous.get("type") in ("content_block_start", "content_block_delta"):
            stop = {"type": "content_block_stop", "index": as_int(previous.get("index"))}
            out += named_event(b"content_block_stop", orjson.dumps(stop))
        delta = {"type": "message_delta", "delta": {"stop_reason": "refusal", "stop_sequence": None},
                 "usage": {"output_tokens": 0}}
        out += named_event(b"message_delta", orjson.dumps(delta))
        return out + named_event(b"message_stop", b'{"type":"message_stop"}')

    # --- what this API's streams do not have ---------------------------------------------
    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        return False  # the terminal event carries the usage unasked

    def drop_event(self, event: dict[str, Any], strip_usage: bool) -> bool:
        return False

    def is_end(self, data: bytes) -> bool:
        return False  # the stream ends at its terminal event and EOF

    def end(self) -> bytes:
        return b""  # no [DONE]

    def outputs(self, body: dict[str, Any]) -> int:
        return 1

    def annotate(self, body: dict[str, Any], prompt: Results, outputs: dict[Hashable, Results]) -> None:
        """No place for filter results in this shape."""

    def is_stream(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def stream_final(self, event: dict[str, Any]) -> list[Text]:
        return []  # no closing event repeats the text

    def stream_error(self, code: str, message: str, last: bytes) -> bytes:
        status = 504 if code == "upstream_timeout" else 500
        event = {"type": "error", "error": {"type": anthropic_type(status), "message": message}}
        return named_event(b"error", orjson.dumps(event))


class CountTokens(Messages):
    """`/v1/messages/count_tokens`: the same prompt, nothing generated."""

    name = "messages.count_tokens"
    gen_ai_operation = "count_tokens"
    operation = Operation.COUNT_TOKENS
    generates = False
    Body = CountTokensBody

    def is_stream(self, body: dict[str, Any]) -> bool:
        return False

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return []  # counting consumes no model tokens: nothing to reserve

    def prompt_framing(self, body: dict[str, Any]) -> int:
        return 0

    def usage(self, body: dict[str, Any]) -> Usage | None:
        return None


def _block_texts(block: dict[str, Any], slots: list[Slot]) -> None:
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        slots.append((block, "text"))
    elif kind == "tool_use" and isinstance(block.get("input"), (dict, list)):
        string_slots(block["input"], slots)
    elif kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            slots.append((block, "content"))
        elif isinstance(content, list):
            slots += [(part, "text") for part in content
                      if isinstance(part, dict) and isinstance(part.get("text"), str)]


def anthropic_usage(usage: Any, before: Usage | None) -> Usage | None:
    """Anthropic's usage: input_tokens excludes what was written to or read from the
    prompt cache, so the prompt is the three together; output_tokens is the total so
    far. A `message_delta` may carry only output_tokens: the rest stays as before."""
    if not isinstance(usage, dict):
        return None
    fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    counts = {f: v for f in (*fields, "output_tokens") if (v := usage.get(f)) is not None}
    # Nothing counted, or a count that is none (a bool, a negative, a fraction): refused,
    # so that it cannot replace what an earlier event reported.
    if not counts or any(type(v) is not int or v < 0 for v in counts.values()):
        return None
    if any(f in counts for f in fields):
        prompt = sum(counts.get(f, 0) for f in fields)
        cached = counts.get("cache_read_input_tokens", 0)
    else:
        prompt = before.prompt_tokens if before else 0
        cached = before.cached_tokens if before else 0
    completion = counts.get("output_tokens", before.completion_tokens if before else 0)
    return Usage(prompt, completion, cached_tokens=cached)


MESSAGES = Messages()
COUNT_TOKENS = CountTokens()

ROUTES = tuple(
    ModelRoute(prefix + path, api, Flavour.ANTHROPIC)
    for prefix in ("/anthropic", "")
    for path, api in (("/v1/messages", MESSAGES), ("/v1/messages/count_tokens", COUNT_TOKENS))
)
