"""The adapter interface: everything that depends on one API's wire shape, in one
class per API (one module each: chat, completions, embeddings, image_embeddings,
responses, anthropic). The handler, relay, limiter and filters go through it and
never branch on which API a request speaks.

    Api  (implements policies.wire.WireApi, which is what policies see)
     request   Body, known, validate, is_stream, ask_stream_usage
     prompt    prompt_texts, prompt_parts, prompt_framing, max_output_tokens, outputs
     stored    previous_response, stores, stored_id, pending
     answer    usage, answer_error, completion_texts, block_completion, annotate
     stream    is_end, may_carry_usage, stream_usage, drop_event, output_text, encode,
               end, stream_delta, stream_final, is_keepalive, blocked_end, stream_error
     telemetry answer_facts, stream_facts
     errors    each route's Flavour (ModelRoute)

Every method an API's wire shape decides is abstract: an adapter that leaves one out
cannot be instantiated, and every adapter is instantiated when `gateway.apis` is
imported. An API without streams, without generated output, or without stored
responses says so by naming the mixin that answers for that part (`NeverStreams`,
`GeneratesNothing`, `StoresNothing`), never by inheriting a silent default.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar, get_args

from pydantic import BaseModel, InstanceOf, ValidationError

from gateway.core.errors import InvalidRequest
from gateway.core.flavours import Flavour
from gateway.core.operations import Operation
from policies import Usage
from policies.wire import Results, Slot, Text

# A usage object (not `"usage":null`) somewhere in an event: the only events whose
# JSON the relay must read when no policy looks at streamed events.
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_MODEL = re.compile(rb'"model":\s*"([A-Za-z0-9._:/@-]{1,200})"')

# A JSON object in a request body's list (messages, tools), checked to be an object and
# nothing more: pydantic's `dict[str, Any]` builds a copy of each one it checks, which for
# a conversation of a thousand messages is most of the check's cost.
JsonObject = InstanceOf[dict[str, Any]]


class Api(abc.ABC):
    # A short name for logs, metrics and the ledger ("chat.completions", "responses").
    name: ClassVar[str]
    # The upstream operation: the key into a backend's URLs.
    operation: ClassVar[Operation]
    # gen_ai.operation.name of the OpenTelemetry GenAI conventions.
    gen_ai_operation: ClassVar[str]
    # False when nothing is generated (embeddings): nothing to reserve for output.
    generates: ClassVar[bool]
    Body: ClassVar[type[BaseModel]]
    # Parameters the API defines; anything else is an "extra parameter".
    known: ClassVar[frozenset[str]]
    # Where a streamed event says why the output ended (telemetry only).
    FINISH: ClassVar[re.Pattern[bytes]] = re.compile(rb'"finish_reason":\s*"(\w{1,40})"')

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None) and not declares_abstract(cls):
            missing = [a for a in ("name", "operation", "gen_ai_operation", "generates", "Body",
                                   "known") if not hasattr(cls, a)]
            if missing:
                raise TypeError(f"adapter {cls.__name__} does not define {', '.join(missing)}")

    # --- request --------------------------------------------------------------------
    def validate(self, body: dict[str, Any]) -> None:
        try:
            self.Body.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            param = _param(self.Body, err["loc"]) or None
            # (InstanceOf's own words name a Python class.)
            msg = "Input should be a JSON object" if err["type"] == "is_instance_of" else err["msg"]
            raise InvalidRequest(
                f"Invalid value for '{param}': {msg}." if param else msg, param=param
            ) from None

    @abc.abstractmethod
    def is_stream(self, body: dict[str, Any]) -> bool:
        """The client asked for a stream."""

    @abc.abstractmethod
    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        """Make a streamed request ask the upstream for usage; True when the client did
        not ask for it itself (the relay then removes what only the gateway wanted)."""

    # --- prompt (policies.wire) -------------------------------------------------------
    @abc.abstractmethod
    def prompt_texts(self, body: dict[str, Any]) -> list[Slot]:
        """Every text the caller supplies, as slots a filter reads and rewrites."""

    @abc.abstractmethod
    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        """What the upstream counts as the prompt, for token estimates."""

    @abc.abstractmethod
    def prompt_framing(self, body: dict[str, Any]) -> int:
        """Tokens the upstream adds around the prompt."""

    @abc.abstractmethod
    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        """The caller's cap on generated tokens per output, if it gave one."""

    @abc.abstractmethod
    def outputs(self, body: dict[str, Any]) -> int:
        """How many outputs are generated (chat's `n`)."""

    # --- state an upstream keeps (the Responses API's stored responses) -------------------
    @abc.abstractmethod
    def previous_response(self, body: dict[str, Any]) -> str | None:
        """The id of an earlier stored answer this request continues."""

    @abc.abstractmethod
    def stores(self, body: dict[str, Any]) -> bool:
        """The upstream will store this request's answer under an id."""

    @abc.abstractmethod
    def stored_id(self, body: dict[str, Any]) -> str | None:
        """That id, from the whole answer or from the first streamed event."""

    @abc.abstractmethod
    def pending(self, body: dict[str, Any]) -> bool:
        """The answer is not final (a background job): its usage comes later."""

    # --- whole answers ----------------------------------------------------------------
    @abc.abstractmethod
    def usage(self, body: dict[str, Any]) -> Usage | None:
        """The usage an answer reports, if it reports one."""

    @abc.abstractmethod
    def answer_error(self, body: dict[str, Any]) -> bool:
        """A 200 whose body is an error object rather than an answer."""

    @abc.abstractmethod
    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        """The generated texts of a whole answer."""

    @abc.abstractmethod
    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        """Make output `key` of a whole answer read as refused by a content filter."""

    @abc.abstractmethod
    def annotate(self, body: dict[str, Any], prompt: Results, outputs: dict[Hashable, Results]) -> None:
        """Add the filter results to a whole answer where the API has a place for them."""

    # --- streams ----------------------------------------------------------------------
    @abc.abstractmethod
    def is_end(self, data: bytes) -> bool:
        """The upstream's end-of-stream marker (chat's `[DONE]`); else the stream ends at EOF."""

    @staticmethod
    def may_carry_usage(data: bytes) -> bool:
        return _USAGE_OBJECT.search(data) is not None

    @abc.abstractmethod
    def stream_usage(self, event: dict[str, Any], usage: Usage | None) -> Usage | None:
        """The usage known after `event` (some APIs spread it over several events)."""

    @abc.abstractmethod
    def drop_event(self, event: dict[str, Any], strip_usage: bool) -> bool:
        """An event the client must not get (the usage the gateway alone asked for)."""

    @abc.abstractmethod
    def output_text(self, data: bytes) -> list[bytes]:
        """The generated text in a raw event, as escaped JSON-string pieces: read without
        parsing, so that a stream that ends without usage can still be counted."""

    @abc.abstractmethod
    def encode(self, name: bytes | None, data: bytes) -> bytes:
        """One event in the API's framing."""

    @abc.abstractmethod
    def end(self) -> bytes:
        """What the gateway sends after the last event of a complete stream."""

    @abc.abstractmethod
    def stream_delta(self, event: dict[str, Any]) -> Text | None:
        """The generated text a streamed event carries, if any."""

    @abc.abstractmethod
    def stream_final(self, event: dict[str, Any]) -> list[Text]:
        """Whole texts a closing event repeats (Responses' `*.done` events)."""

    @abc.abstractmethod
    def is_keepalive(self, event: dict[str, Any]) -> bool:
        """An event that carries nothing (Anthropic's `ping`)."""

    @abc.abstractmethod
    def blocked_end(self, first: bytes, last: bytes, result: Results) -> bytes:
        """The events that end a stream a content filter blocked, in this API's terms;
        `first` and `last` are the data of the first and last event the client got (a
        keepalive, which says nothing of where the stream is, does not count as last)."""

    @abc.abstractmethod
    def stream_error(self, code: str, message: str, last: bytes) -> bytes:
        """An error inside a stream that has already started (the status line is sent)."""

    # --- telemetry (asked only when a request is traced) ---------------------------------
    def answer_facts(self, body: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        """The model that answered and why each output ended (the `choices` shape;
        APIs of another shape override it)."""
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


def _param(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> str:
    """The parameter an error is about, as the client names it (`max_tokens`,
    `stream_options.include_usage`, `messages.0`): pydantic also puts the label of a
    union's member in the path (`prompt.str`), which is no name of the client's."""
    names: list[str] = []
    for part in loc:
        if isinstance(part, int):
            names.append(str(part))
        elif model is not None and part in model.model_fields:
            names.append(part)
            annotation = model.model_fields[part].annotation
            model = next((a for a in (annotation, *get_args(annotation))
                          if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return ".".join(names)


def declares_abstract(cls: type) -> bool:
    """A class that declares abstract methods of its own is an interface (`media.MediaApi`),
    not an adapter: ABCMeta tells only after `__init_subclass__` has run."""
    return any(getattr(v, "__isabstractmethod__", False) for v in vars(cls).values())


class NeverStreams:
    """For an API without streams (embeddings): a request never streams, so the relay
    never asks the stream methods; if it did, that is a bug and says so."""

    def is_stream(self, body: dict[str, Any]) -> bool:
        return False

    def ask_stream_usage(self, body: dict[str, Any]) -> bool:
        return False

    def _no_stream(self, *_: Any) -> Any:
        raise AssertionError(f"{type(self).__name__} has no streams")

    is_end = stream_usage = drop_event = output_text = encode = _no_stream
    stream_delta = stream_final = is_keepalive = blocked_end = stream_error = _no_stream

    def end(self) -> bytes:
        raise AssertionError(f"{type(self).__name__} has no streams")


class GeneratesNothing:
    """For an API whose answer holds no generated text (embeddings, token counts)."""

    generates: ClassVar[bool] = False

    def prompt_framing(self, body: dict[str, Any]) -> int:
        return 0

    def max_output_tokens(self, body: dict[str, Any]) -> int | None:
        return None

    def outputs(self, body: dict[str, Any]) -> int:
        return 1

    def completion_texts(self, body: dict[str, Any]) -> list[Text]:
        return []

    def block_completion(self, body: dict[str, Any], key: Hashable, result: Results) -> None:
        """Nothing generated, nothing to block."""

    def annotate(self, body: dict[str, Any], prompt: Results, outputs: dict[Hashable, Results]) -> None:
        """No place for filter results."""


class StoresNothing:
    """For an API whose upstream keeps nothing the gateway must route back to."""

    def previous_response(self, body: dict[str, Any]) -> str | None:
        return None

    def stores(self, body: dict[str, Any]) -> bool:
        return False

    def stored_id(self, body: dict[str, Any]) -> str | None:
        return None

    def pending(self, body: dict[str, Any]) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A route that forwards to a model: its path, its API, and how its errors look."""

    path: str
    api: Api
    flavour: Flavour
    # /models/* also read the model from x-ms-model-mesh-model-name / azureml-model-deployment.
    model_from_headers: bool = False
