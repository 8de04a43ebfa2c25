"""The wire pieces the adapters share (gateway.apis.shapes), seen through what a content
filter does with them: a tool schema's texts may be redacted, its names may not."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.apis.anthropic import MESSAGES
from gateway.apis.chat import CHAT
from gateway.apis.responses import RESPONSES
from gateway.apis.shapes import named_event, schema_slots, string_slots, usage_counts
from policies import Caller, ContentBlocked, RequestContext, Usage
from policies.content import BlocklistConfig, ContentFilterPolicy, ContentProfile
from tests.samples import sample, slot_paths


def redacting(*terms: str) -> ContentFilterPolicy:
    profile = ContentProfile("p", [BlocklistConfig(type="blocklist", terms=terms, action="redact")])
    return ContentFilterPolicy({"d": profile})


async def test_a_redaction_never_renames_what_a_schema_names() -> None:
    """The recorded request's capital_lookup tool takes `country`: redacting the word
    leaves the schema describing the same arguments (properties, required, types)."""
    body = sample("anthropic-messages-request.json")
    body["tools"][1]["input_schema"]["properties"]["country"]["description"] = "The country, in English"
    ctx = RequestContext("r", MESSAGES, "d", Caller("c", None), body)
    await redacting("country", "string").on_request(ctx)
    schema = body["tools"][1]["input_schema"]
    assert schema["properties"] == {
        "country": {"type": "string", "description": "The [BLOCKED], in English"}}
    assert schema["required"] == ["country"] and schema["type"] == "object"


async def test_a_blocklist_still_sees_a_schemas_names() -> None:
    body = sample("anthropic-messages-request.json")
    ctx = RequestContext("r", MESSAGES, "d", Caller("c", None), body)
    profile = ContentProfile("p", [BlocklistConfig(type="blocklist", terms=("country",))])
    with pytest.raises(ContentBlocked):
        await ContentFilterPolicy({"d": profile}).on_request(ctx)


def test_schema_slots_texts_writable_names_read_only() -> None:
    schema: dict[str, Any] = {
        "type": "object", "title": "Order", "description": "An order",
        "properties": {"type": {"type": "string", "enum": ["gift", "plain"], "description": "Kind"},
                       "address": {"$ref": "#/$defs/Address"},
                       "required": {"type": ["boolean", "null"], "default": False}},
        "required": ["type", "address"],
        "$defs": {"Address": {"type": "object", "properties": {"street": {"type": "string",
                                                                          "examples": ["1 Main St"]}}}},
    }
    slots: list[Any] = []
    schema_slots(schema, slots)
    found = sorted((p or "(read-only)", v) for p, v in slot_paths(schema, slots))
    assert found == sorted([
        ("title", "Order"), ("description", "An order"),
        ("properties.type.enum.0", "gift"), ("properties.type.enum.1", "plain"),
        ("properties.type.description", "Kind"),
        ("$defs.Address.properties.street.examples.0", "1 Main St"),
        *[("(read-only)", n) for n in ("type", "address", "required", "street")],  # property names
        *[("(read-only)", n) for n in ("type", "address")],  # required
        *[("(read-only)", n) for n in ("object", "string", "boolean", "null", "object", "string")],
        ("(read-only)", "#/$defs/Address"),
    ])


def test_string_slots_of_data_are_all_writable() -> None:
    """A tool call's input is data, not a schema: `type` there is the caller's text."""
    data = {"type": "a gift", "required": ["x"], "nested": [{"text": "y"}]}
    slots: list[Any] = []
    string_slots(data, slots)
    assert sorted(p or "" for p, _ in slot_paths(data, slots)) == ["nested.0.text", "required.0", "type"]


def test_every_adapter_takes_the_same_view_of_a_schema() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string", "description": "Query"}},
              "required": ["q"]}
    bodies = [
        (CHAT, {"messages": [],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}),
        (RESPONSES, {"tools": [{"type": "function", "name": "f", "parameters": schema}]}),
        (MESSAGES, {"messages": [], "tools": [{"name": "f", "input_schema": schema}]}),
    ]
    views = []
    for api, body in bodies:
        views.append(sorted((p.rsplit(".", 1)[-1] if p else "(read-only)", v) for p, v in
                            slot_paths(body, api.prompt_texts(body)) if v != "f"))
    assert views[0] == views[1] == views[2] == sorted([
        ("description", "Query"), ("(read-only)", "q"), ("(read-only)", "q"),
        ("(read-only)", "string"), ("(read-only)", "object")])


def test_usage_counts_are_whole_non_negative_numbers() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4},
             "completion_tokens_details": {"reasoning_tokens": 2}}
    names = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
    assert usage_counts(usage, *names) == Usage(10, 5, cached_tokens=4, reasoning_tokens=2)
    assert usage_counts({"prompt_tokens": 3}, *names) == Usage(3, 0)  # embeddings: no completion
    for bad in (True, -1, 2.0, "3", None):
        assert usage_counts({**usage, "prompt_tokens": bad}, *names) is None
    assert usage_counts([usage], *names) is None


def test_named_event_names_an_unnamed_event_by_its_type_if_it_can() -> None:
    assert named_event(b"x", b"{}") == b"event: x\ndata: {}\n\n"
    assert named_event(None, b'{"type":"response.created"}').startswith(b"event: response.created\n")
    for odd in (b'{"type":"a b"}', b'{"type":1}', b"not json", b"[]", b'{"type":"' + b"a" * 65 + b'"}'):
        assert named_event(None, odd).startswith(b"event: message\n")
