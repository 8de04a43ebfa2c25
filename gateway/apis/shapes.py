"""Pieces of wire shapes that several adapters share: the slots of a JSON schema, an
OpenAI-style usage object, SSE framings (`data:` and `event:` + `data:`), and a lenient
JSON object read. Nothing here knows which API it serves."""

from __future__ import annotations

import re
from typing import Any

import orjson

from policies import Usage
from policies.wire import Slot


def string_slots(value: Any, out: list[Slot], names: frozenset[str] = frozenset()) -> None:
    """Every string inside a JSON value (a tool's parameter schema, say), as slots.
    Object keys are names, not text: a filter can block on them through `key_slots`; so
    are the strings under a key in `names`, which become read-only copies."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if key in names and isinstance(item, (str, list)):
                    out += [([n], 0) for n in (item if isinstance(item, list) else [item])
                            if isinstance(n, str)]
                elif isinstance(item, str):
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


# A schema's keywords whose strings name things: properties (`required`), types and
# definitions. Rewritten, the schema would no longer be valid (a `required` naming no
# property) or would mean something else.
SCHEMA_NAMES = frozenset({"type", "required", "$ref"})


def schema_slots(schema: Any, out: list[Slot]) -> None:
    """A JSON schema a caller sent (a tool's parameters, a structured-output format):
    its strings as slots, its property names and other names as read-only ones."""
    string_slots(schema, out, SCHEMA_NAMES)
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





def items(value: Any) -> list[Any]:
    """A value that should be a list, as one: anything else (a number where a list
    belongs, null) holds no items. The adapters read client bodies with it, so that a
    malformed field never makes a policy raise."""
    return value if isinstance(value, list) else []


def data_event(data: bytes) -> bytes:
    """`data: <json>`: the framing of Chat Completions and Completions streams."""
    return b"data: " + data + b"\n\n"


def openai_stream_error(code: str, message: str) -> bytes:
    """An error event inside a `data:` stream that has already started."""
    body = {"error": {"code": code, "message": message, "type": "server_error", "param": None}}
    return data_event(orjson.dumps(body))


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
