"""The adapter interface (gateway.apis.base.Api) cannot silently regress: every adapter
is a complete Api, every wire-shape method stays abstract, and an adapter that leaves
one out, or a class attribute, cannot be built."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from gateway.apis import APIS, MEDIA_ROUTES, MODEL_ROUTES
from gateway.apis.base import Api, GeneratesNothing, NeverStreams, StoresNothing
from gateway.apis.chat import ChatCompletions
from gateway.core.errors import InvalidRequest
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies.wire import WireApi

# What each API's wire shape decides, as base.py's docstring lists it: every one must stay
# abstract, so that an adapter cannot inherit a silent default for it.
WIRE_SHAPE = {
    "is_stream", "ask_stream_usage",
    "prompt_texts", "prompt_parts", "prompt_framing", "max_output_tokens", "outputs",
    "previous_response", "stores", "stored_id", "pending",
    "usage", "answer_error", "completion_texts", "block_completion", "annotate",
    "is_end", "stream_usage", "drop_event", "output_text", "encode", "end", "stream_delta",
    "stream_final", "is_keepalive", "blocked_end", "stream_error",
}
CLASS_ATTRIBUTES = ("name", "operation", "gen_ai_operation", "generates", "Body", "known")


def test_every_wire_shape_method_is_abstract() -> None:
    assert Api.__abstractmethods__ == WIRE_SHAPE


@pytest.mark.parametrize("api", APIS, ids=lambda a: a.name)
def test_every_adapter_is_a_complete_api(api: Api) -> None:
    assert isinstance(api, Api)
    assert not type(api).__abstractmethods__
    for attribute in CLASS_ATTRIBUTES:
        assert hasattr(api, attribute), attribute
    assert isinstance(api.operation, Operation)


def test_adapters_have_distinct_names_and_every_route_uses_one() -> None:
    assert len({a.name for a in APIS}) == len(APIS)
    routes = (*MODEL_ROUTES, *MEDIA_ROUTES)
    assert {id(r.api) for r in routes} == {id(a) for a in APIS}
    assert all(isinstance(r.flavour, Flavour) for r in routes)


def test_every_adapter_is_what_policies_see() -> None:
    """policies.wire.WireApi is what policies call: Api must keep every one of its
    methods, with the same parameters."""
    wanted = {n for n in dir(WireApi) if not n.startswith("_")}
    for api in APIS:
        assert wanted <= set(dir(api)), api.name
    for name in wanted:
        theirs = getattr(WireApi, name)
        if isinstance(theirs, property):
            continue
        assert list(inspect.signature(getattr(Api, name)).parameters) == \
            list(inspect.signature(theirs).parameters), name


def _methods_of(cls: type) -> dict[str, Any]:
    """The wire-shape methods a complete adapter defines, looked up along its MRO."""
    return {name: getattr(cls, name) for name in WIRE_SHAPE}


@pytest.mark.parametrize("missing", sorted(WIRE_SHAPE))
def test_an_adapter_missing_one_method_cannot_be_instantiated(missing: str) -> None:
    methods = _methods_of(ChatCompletions)
    del methods[missing]
    attributes = {a: getattr(ChatCompletions, a) for a in CLASS_ATTRIBUTES}
    partial = type("Partial", (Api,), {**attributes, **methods})
    with pytest.raises(TypeError, match=missing):
        partial()


@pytest.mark.parametrize("missing", CLASS_ATTRIBUTES)
def test_a_complete_adapter_missing_a_class_attribute_cannot_be_defined(missing: str) -> None:
    attributes = {a: getattr(ChatCompletions, a) for a in CLASS_ATTRIBUTES if a != missing}
    with pytest.raises(TypeError, match=missing):
        type("Partial", (Api,), {**attributes, **_methods_of(ChatCompletions)})


def test_the_mixins_answer_for_what_an_api_lacks() -> None:
    """NeverStreams, GeneratesNothing and StoresNothing together with the prompt and
    answer methods make a complete adapter; without one of them it is not."""
    own: dict[str, Any] = {"prompt_texts": lambda self, body: [], "prompt_parts": lambda self, body: [],
           "usage": lambda self, body: None, "answer_error": lambda self, body: False}
    attributes = {"name": "x", "operation": Operation.EMBEDDINGS, "gen_ai_operation": "x",
                  "Body": ChatCompletions.Body, "known": frozenset()}
    whole = type("Whole", (NeverStreams, GeneratesNothing, StoresNothing, Api), {**attributes, **own})
    assert whole().generates is False
    for left_out in (NeverStreams, GeneratesNothing, StoresNothing):
        bases = tuple(b for b in (NeverStreams, GeneratesNothing, StoresNothing) if b is not left_out)
        cls = type("Lacking", (*bases, Api), {**attributes, "generates": False, **own})
        with pytest.raises(TypeError, match="abstract"):
            cls()


def test_an_api_that_never_streams_says_so_loudly() -> None:
    embeddings = next(a for a in APIS if a.name == "embeddings")
    assert embeddings.is_stream({"stream": True}) is False
    with pytest.raises(AssertionError, match="no streams"):
        embeddings.encode(None, b"{}")
    with pytest.raises(AssertionError, match="no streams"):
        embeddings.end()


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "hi"}, "hi"]}, "messages.1"),
    ({"messages": [], "tools": [[]]}, "tools.0"),
])
def test_a_list_item_that_is_not_an_object_is_named_in_the_clients_words(
        body: dict[str, Any], param: str) -> None:
    # Checked without a copy of each object (base.JsonObject): the words are still the
    # client's, not the name of a Python class.
    with pytest.raises(InvalidRequest) as caught:
        ChatCompletions().validate(body)
    assert caught.value.param == param
    assert str(caught.value) == f"Invalid value for '{param}': Input should be a JSON object."
