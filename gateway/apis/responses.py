"""The Responses API (`/responses`): OpenAI's and Azure OpenAI's. Streams are
`event: <type>` + `data: <json>` and simply end (no `[DONE]`) after
`response.completed`, `response.incomplete` or `response.failed`, whose response
carries the usage. Stored responses (retrieve, delete, input items, cancel) are
served by `gateway.http.stored`; this module says where their ids are."""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from gateway.apis import shapes
from gateway.apis.base import Api, JsonObject, ModelRoute
from gateway.apis.shapes import as_int, loads, named_event, schema_slots, usage_counts
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies import Usage
from policies.wire import Results, Slot, Text

# Generated text in a raw event: every `*.delta` of the Responses API is a string.
_OUTPUT = re.compile(rb'"delta"\s*:\s*"((?:[^"\\]|\\.)*)"')
_TEXT_DELTAS = ("response.output_text.delta", "response.refusal.delta")
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
PER_ITEM = 4
REPLY_PRIMING = 3


class ResponsesBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    input: StrictStr | list[Any] | None = None
    instructions: StrictStr | None = None
    stream: StrictBool | None = None
    max_output_tokens: StrictInt | None = None
    store: StrictBool | None = None
    background: StrictBool | None = None
    previous_response_id: StrictStr | None = None
    tools: list[JsonObject] | None = None
    user: StrictStr | None = None


class Responses(Api):
    name = "responses"
    FINISH = re.compile(rb'"type":\s*"response\.(completed|incomplete|failed)"')

    def answer_facts(self, body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        model, status = body.get("model"), body.get("status")
        return (model if isinstance(model, str) else "",
                (status,) if isinstance(status, str) else ())
    operation = Operation.RESPONSES
    gen_ai_operation = "chat"
    generates = True
    Body: ClassVar[type[BaseModel]] = ResponsesBody
    known = frozenset({
        "model", "input", "instructions", "stream", "stream_options", "max_output_tokens",
        "max_tool_calls", "store", "background", "previous_response_id", "conversation", "prompt",
        "tools", "tool_choice", "parallel_tool_calls", "reasoning", "text", "temperature", "top_p",
        "top_logprobs", "truncation", "include", "metadata", "user", "safety_identifier",
        "prompt_cache_key", "prompt_cache_retention", "service_tier",
    })

    # --- prompt -----------------------------------------------------------------------
    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        slots: list[Slot] = []
        if isinstance(body.get("instructions"), str):
            slots.append((body, "instructions"))
        given = body.get("input")
        if isinstance(given, str):
            slots.append((body, "input"))
        elif isinstance(given, list):
            for item in given:
                if isinstance(item, dict):
                    _item_texts(item, slots)
        for tool in shapes.items(body.get("tools")):
            if isinstance(tool, dict):
                for key in ("name", "description"):
                    if isinstance(tool.get(key), str):
                        slots.append((tool, key))
                if isinstance(tool.get("parameters"), (dict, list)):
                    schema_slots(tool["parameters"], slots)
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
        if isinstance(fmt, dict):  # a json_schema format: its description and schema
            if isinstance(fmt.get("description"), str):
                slots.append((fmt, "description"))
            if isinstance(fmt.get("schema"), dict):
                schema_slots(fmt["schema"], slots)
        return slots

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return [body.get("instructions"), body.get("input"), body.get("tools")]

    def prompt_framing(self, body: dict[str, Any]) -> int:
        items = body.get("input")
        return PER_ITEM * (len(items) if isinstance(items, list) else 1) + REPLY_PRIMING

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        limit = body.get("max_output_tokens")
        return limit if isinstance(limit, int) else None

    def previous_response(self, body: dict[str, Any]) -> str | None:
        previous = body.get("previous_response_id")
        return previous if isinstance(previous, str) and previous else None

    def stores(self, body: dict[str, Any]) -> bool:
        return body.get("store") is not False

    # --- whole answers ----------------------------------------------------------------
    def usage(self, body: dict[str, Any]) -> Usage | None:
        return responses_usage(body.get("usage"))

    def answer_error(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("error"), dict) and body.get("object") != "response"

    def pending(self, body: dict[str, Any]) -> bool:
        return body.get("status") in ("queued", "in_progress")

    def stored_id(self, body: dict[str, Any]) -> str | None:
        """The id of a response the upstream stores, from an answer or its first event."""
        response = body.get("response") if body.get("type") == "response.created" else body
        if isinstance(response, dict) and response.get("object") == "response":
            ident = response.get("id")
            return ident if isinstance(ident, str) else None
        return None

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        return output_texts(body.get("output"))

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        for text in output_texts(body.get("output")):
            if text.key == key:
                text.set("")
        body["status"] = "incomplete"
        body["incomplete_details"] = {"reason": "content_filter"}

    # --- streams ----------------------------------------------------------------------
    def stream_usage(self, event: dict[str, Any], usage: Usage | None) -> Usage | None:
        response = event.get("response")
        if event.get("type") in TERMINAL and isinstance(response, dict):
            return responses_usage(response.get("usage")) or usage
        return usage

    def output_text(self, data: bytes) -> list[bytes]:
        return _OUTPUT.findall(data)

    def encode(self, name: bytes | None, data: bytes) -> bytes:
        return named_event(name, data)

    def stream_delta(self, event: dict[str, Any]) -> Text | None:
        kind = event.get("type")
        if not isinstance(event.get("delta"), str) or not event["delta"]:
            return None
        index = as_int(event.get("output_index"))
        if kind in _TEXT_DELTAS:
            return Text((index, as_int(event.get("content_index"))), (event, "delta"))
        if kind == "response.function_call_arguments.delta":
            return Text((index, "args"), (event, "delta"))
        return None

    def stream_final(self, event: dict[str, Any]) -> list[Text]:
        kind = event.get("type")
        index = as_int(event.get("output_index"))
        if kind == "response.output_text.done" and isinstance(event.get("text"), str):
            return [Text((index, as_int(event.get("content_index"))), (event, "text"))]
        if kind == "response.refusal.done" and isinstance(event.get("refusal"), str):
            return [Text((index, as_int(event.get("content_index"))), (event, "refusal"))]
        if kind == "response.function_call_arguments.done" and isinstance(event.get("arguments"), str):
            return [Text((index, "args"), (event, "arguments"))]
        if kind == "response.content_part.done" and isinstance(event.get("part"), dict):
            return _part_texts(event["part"], (index, as_int(event.get("content_index"))))
        if kind == "response.output_item.done" and isinstance(event.get("item"), dict):
            return _item_outputs(event["item"], index)
        if kind in TERMINAL and isinstance(event.get("response"), dict):
            return output_texts(event["response"].get("output"))
        return []

    def blocked_end(self, first: bytes, last: bytes, result: Results) -> bytes:
        """A terminal `response.incomplete` whose reason is content_filter, as Azure ends a
        filtered Responses stream."""
        try:
            created = loads(first) if first else {}
            previous = loads(last) if last else {}
        except orjson.JSONDecodeError:
            created, previous = {}, {}
        response = created.get("response")
        response = dict(response) if isinstance(response, dict) else {"object": "response"}
        response.update(status="incomplete", incomplete_details={"reason": "content_filter"},
                        output=[], usage=None)
        event = {"type": "response.incomplete",
                 "sequence_number": as_int(previous.get("sequence_number")) + 1,
                 "response": response}
        return named_event(b"response.incomplete", orjson.dumps(event))

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

    def is_keepalive(self, event: dict[str, Any]) -> bool:
        return False

    def stream_error(self, code: str, message: str, last: bytes) -> bytes:
        # Nested `error`: the openai SDK raises APIError on it (a flat one it would yield).
        try:
            sequence = as_int(loads(last).get("sequence_number")) + 1 if last else 0
        except orjson.JSONDecodeError:
            sequence = 0
        event = {"type": "error", "sequence_number": sequence,
                 "error": {"type": "server_error", "code": code, "message": message, "param": None}}
        return named_event(b"error", orjson.dumps(event))


def _item_texts(item: dict[str, Any], slots: list[Slot]) -> None:
    """The caller's texts in one input item: a message, a function call it replays, or
    a tool's output."""
    content = item.get("content")
    if isinstance(content, str):
        slots.append((item, "content"))
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                for key in ("text", "refusal"):
                    if isinstance(part.get(key), str):
                        slots.append((part, key))
    kind = item.get("type")
    if kind == "function_call" and isinstance(item.get("arguments"), str):
        slots.append((item, "arguments"))
    elif kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        if isinstance(output, str):
            slots.append((item, "output"))
        elif isinstance(output, list):
            slots += [(part, "text") for part in output
                      if isinstance(part, dict) and isinstance(part.get("text"), str)]


def _part_texts(part: dict[str, Any], key: Hashable) -> list[Text]:
    for field in ("text", "refusal"):
        if isinstance(part.get(field), str):
            return [Text(key, (part, field))]
    return []


def _item_outputs(item: dict[str, Any], index: int) -> list[Text]:
    if item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
        return [Text((index, "args"), (item, "arguments"))]
    texts: list[Text] = []
    content = item.get("content")
    if item.get("type") == "message" and isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict):
                texts += _part_texts(part, (index, j))
    return texts


def output_texts(output: Any) -> list[Text]:
    """The generated texts of a response's `output` list, keyed (item, part)."""
    if not isinstance(output, list):
        return []
    texts: list[Text] = []
    for i, item in enumerate(output):
        if isinstance(item, dict):
            texts += _item_outputs(item, i)
    return texts


def responses_usage(usage: Any) -> Usage | None:
    return usage_counts(usage, "input_tokens", "output_tokens", "input_tokens_details",
                        "output_tokens_details")


RESPONSES = Responses()

ROUTES = (
    ModelRoute("/v1/responses", RESPONSES, Flavour.OPENAI),
    ModelRoute("/openai/v1/responses", RESPONSES, Flavour.OPENAI),
    ModelRoute("/openai/responses", RESPONSES, Flavour.AZURE_OPENAI),
)
