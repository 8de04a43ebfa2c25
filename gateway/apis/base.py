"""The adapter interface: everything that depends on one API's wire shape, in one
class per API (one module each: chat, completions, embeddings, image_embeddings,
responses, anthropic). The handler, relay, limiter and filters go through it and
never branch on which API a request speaks.

    Api  (implements policies.wire.WireApi, which is what policies see)
     request   Body, known, validate, is_stream, ask_stream_usage
     prompt    prompt_texts, prompt_parts, prompt_framing, max_output_tokens, outputs
     stored    previous_response, stores, stored_id, pending
     answer    usage, answer_error, completion_texts, block_completion, annotate
     stream    named, is_end, stream_usage, drop_event, output_text, encode, end,
               stream_delta, stream_final, is_keepalive, blocked_end, stream_error
     errors    flavour (the error body's shape, see gateway.core.errors)

The defaults here are those of an API that generates nothing and never streams
(embeddings); each module overrides what its API has.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ValidationError

from gateway.core.errors import InvalidRequest
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies import Usage
from policies.wire import Results, Slot, Text

# A usage object (not `"usage":null`) somewhere in an event: the only events whose
# JSON the relay must read when no policy looks at streamed events.
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


def string_slots(value: Any, out: list[Slot]) -> None:
    """Every string inside a JSON value (a tool's parameter schema, say), as slots.
    Object keys are names, not text: a filter can block on them through `key_slots`."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if isinstance(item, str):
                    out.append((node, key))
                elif isinstance(item, (dict, list)):
                    stack.append(item)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    out.append((node, i))
                elif isinstance(item, (dict, list)):
                    stack.append(item)


def key_slots(value: Any, out: list[Slot]) -> None:
    """The property names of a JSON schema, as read-only slots: a blocklist sees them, a
    redaction cannot rename a property, so it is kept."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                out += [([name], 0) for name in props]
            stack += [v for v in node.values() if isinstance(v, (dict, list))]
        elif isinstance(node, list):
            stack += [v for v in node if isinstance(v, (dict, list))]


def schema_slots(schema: Any, out: list[Slot]) -> None:
    """A JSON schema a caller sent (a tool's parameters, a structured-output format):
    its strings as slots, its property names as read-only ones."""
    string_slots(schema, out)
    key_slots(schema, out)


def usage_counts(usage: Any, prompt: str, completion: str, prompt_details: str,
                 completion_details: str) -> Usage | None:
    """An OpenAI-style usage object, under the names its API gives the prompt and
    completion counts and their details (cached prompt tokens, reasoning tokens); None
    unless the prompt count is a whole number. `type(...) is` keeps out bools, which
    are ints to isinstance."""
    if type(usage) is not dict:
        return None
    p, c = usage.get(prompt), usage.get(completion, 0)
    if type(p) is not int or type(c) is not int or p < 0 or c < 0:
        return None
    pd, cd = usage.get(prompt_details), usage.get(completion_details)
    return Usage(p, c,
                 cached_tokens=as_int(pd.get("cached_tokens")) if type(pd) is dict else 0,
                 reasoning_tokens=as_int(cd.get("reasoning_tokens")) if type(cd) is dict else 0)


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


_MODEL = re.compile(rb'"model":\s*"([A-Za-z0-9._:/@-]{1,200})"')


class Api:
    name: ClassVar[str]
    # The upstream operation: the key into a backend's URLs ("chat/completions", ...).
    operation: ClassVar[Operation]
    # gen_ai.operation.name of the OpenTelemetry GenAI conventions.
    gen_ai_operation: ClassVar[str] = "chat"
    # Where a streamed event says why the output ended (telemetry only).
    FINISH: ClassVar[re.Pattern[bytes]] = re.compile(rb'"finish_reason":\s*"(\w{1,40})"')
    generates: ClassVar[bool] = False
    Body: ClassVar[type[BaseModel]]
    # Parameters the API defines; anything else is an "extra parameter".
    known: ClassVar[frozenset[str]] = frozenset()
    # Streams whose events carry their name (`event: <type>`); else strict `data:` lines.
    named: ClassVar[bool] = False

    # --- request --------------------------------------------------------------------
    def validate(self, body: dict[str, Any]) -> None:
        try:
            self.Body.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            param = ".".join(str(p) for p in err["loc"]) or None
            raise InvalidRequest(
                f"Invalid value for '{param}': {err['msg']}." if param else err["msg"], param=param
            ) from None

    def is_stream(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        """Make a streamed request ask the upstream for usage; True when the client did
        not ask for it itself (the relay then removes what only the gateway wanted)."""
        return False

    # --- telemetry (asked only when a request is traced) ---------------------------------
    def answer_facts(self, body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        """The model that answered and why each output ended."""
        model = body.get("model")
        choices = body.get("choices")
        reasons = tuple(c["finish_reason"] for c in choices if isinstance(c, dict)
                        and isinstance(c.get("finish_reason"), str)) \
            if isinstance(choices, list) else ()
        return (model if isinstance(model, str) else ""), reasons

    def stream_facts(self, data: bytes) -> tuple[str | None, str | None]:
        """The same from one streamed event's bytes, without parsing it."""
        model = _MODEL.search(data)
        finish = self.FINISH.search(data)
        return (model.group(1).decode() if model else None,
                finish.group(1).decode() if finish else None)

    # --- prompt (policies.wire) -------------------------------------------------------
    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        return []

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return []

    def prompt_framing(self, body: dict[str, Any]) -> int:
        return 0

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        return None

    def outputs(self, body: dict[str, Any]) -> int:
        return 1

    # --- state an upstream keeps (the Responses API's stored responses) -------------------
    def previous_response(self, body: dict[str, Any]) -> str | None:
        """The id of an earlier stored answer this request continues."""
        return None

    def stores(self, body: dict[str, Any]) -> bool:
        """The upstream will store this request's answer under an id."""
        return False

    def stored_id(self, body: dict[str, Any]) -> str | None:
        """That id, from the whole answer or from the first streamed event."""
        return None

    def pending(self, body: dict[str, Any]) -> bool:
        """The answer is not final (a background job): its usage comes later."""
        return False

    # --- whole answers ----------------------------------------------------------------
    def usage(self, body: dict[str, Any]) -> Usage | None:
        return None

    def answer_error(self, body: dict[str, Any]) -> bool:
        """A 200 whose body is an error object rather than an answer."""
        return isinstance(body.get("error"), dict) and len(body) <= 2

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        return []

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        pass

    def annotate(self, body: dict[str, Any], prompt: Results, outputs: dict[Hashable, Results]) -> None:
        pass

    # --- streams ----------------------------------------------------------------------
    def is_end(self, data: bytes) -> bool:
        """The upstream's end-of-stream marker (chat's `[DONE]`); else the stream ends at EOF."""
        return False

    @staticmethod
    def may_carry_usage(data: bytes) -> bool:
        return _USAGE_OBJECT.search(data) is not None

    def stream_usage(self, event: dict[str, Any], usage: Usage | None) -> Usage | None:
        """The usage known after `event` (some APIs spread it over several events)."""
        return usage

    def drop_event(self, event: dict[str, Any], strip_usage: bool) -> bool:
        return False

    def output_text(self, data: bytes) -> list[bytes]:
        """The generated text in a raw event, as escaped JSON-string pieces: read without
        parsing, so that a stream that ends without usage can still be counted."""
        return []

    def encode(self, name: bytes | None, data: bytes) -> bytes:
        return b"data: " + data + b"\n\n"

    def end(self) -> bytes:
        """What the gateway sends after the last event of a complete stream."""
        return b""

    def stream_delta(self, event: dict[str, Any]) -> Text | None:
        return None

    def stream_final(self, event: dict[str, Any]) -> list[Text]:
        return []

    def is_keepalive(self, event: dict[str, Any]) -> bool:
        return False

    def blocked_end(self, first: bytes, last: bytes, result: Results) -> bytes:
        """The events that end a stream a content filter blocked, in this API's terms;
        `first` and `last` are the data of the first and last event the client got."""
        return b""

    def stream_error(self, code: str, message: str, last: bytes) -> bytes:
        """An error inside a stream that has already started (the status line is sent)."""
        body = {"error": {"code": code, "message": message, "type": "server_error", "param": None}}
        return self.encode(None, orjson.dumps(body))


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A route that forwards to a model: its path, its API, and how its errors look."""

    path: str
    api: Api
    flavour: Flavour
    # /models/* also read the model from x-ms-model-mesh-model-name / azureml-model-deployment.
    model_from_headers: bool = False


def named_event(name: bytes | None, data: bytes) -> bytes:
    """`event: <type>` + `data: <json>`, the framing of Responses and Anthropic streams.
    An upstream that sent no event name gets one from the JSON's own `type`."""
    if not name:
        try:
            kind = orjson.loads(data).get("type")
        except (orjson.JSONDecodeError, AttributeError):
            kind = None
        name = kind.encode() if isinstance(kind, str) and _EVENT_NAME.fullmatch(kind) else b"message"
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


_EVENT_NAME = re.compile(r"[A-Za-z0-9_.]{1,64}")


def loads(data: bytes) -> dict[str, Any]:
    value = orjson.loads(data)
    return value if isinstance(value, dict) else {}
