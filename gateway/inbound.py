"""Reading a client request: size limit, JSON, field types, the model name and
the `extra-parameters` rule. Everything here is client input, so every failure
is a clear 400/413, never an exception that escapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, ValidationError

from gateway.errors import (
    ExtraParametersNotAllowed,
    InvalidRequest,
    NoModelName,
    RequestTooLarge,
)

MODEL_HEADERS = ("x-ms-model-mesh-model-name", "azureml-model-deployment")


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    user: StrictStr | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool | None = None


class _Generation(_Body):
    stream: StrictBool | None = None
    stream_options: _StreamOptions | None = None
    max_tokens: StrictInt | None = None
    n: StrictInt | None = None
    temperature: float | None = None
    top_p: float | None = None


class ChatBody(_Generation):
    messages: list[dict[str, Any]]
    max_completion_tokens: StrictInt | None = None


class CompletionBody(_Generation):
    prompt: StrictStr | list[Any]


class EmbeddingsBody(_Body):
    input: StrictStr | list[Any]
    encoding_format: StrictStr | None = None
    dimensions: StrictInt | None = None


class ImageEmbeddingsBody(_Body):
    input: list[dict[str, Any]]
    encoding_format: StrictStr | None = None
    dimensions: StrictInt | None = None


BODIES: dict[str, type[_Body]] = {
    "chat/completions": ChatBody,
    "completions": CompletionBody,
    "embeddings": EmbeddingsBody,
    "images/embeddings": ImageEmbeddingsBody,
}

_COMMON = {"model", "user", "stream", "stream_options", "n", "seed", "stop", "temperature", "top_p"}
# Parameters the OpenAI and Azure APIs define; anything else is an "extra parameter".
KNOWN: dict[str, frozenset[str]] = {
    "chat/completions": frozenset(
        _COMMON
        | {
            "messages", "max_tokens", "max_completion_tokens", "frequency_penalty",
            "presence_penalty", "logit_bias", "logprobs", "top_logprobs", "response_format",
            "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
            "modalities", "audio", "prediction", "reasoning_effort", "service_tier", "store",
            "metadata", "data_sources", "verbosity", "web_search_options", "prompt_cache_key",
            "safety_identifier", "user_security_context",
        }
    ),
    "completions": frozenset(
        _COMMON
        | {
            "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
            "max_tokens", "presence_penalty", "suffix",
        }
    ),
    "embeddings": frozenset({"model", "user", "input", "encoding_format", "dimensions", "input_type"}),
    "images/embeddings": frozenset({"model", "input", "encoding_format", "dimensions", "input_type"}),
}

EXTRA_MODES = ("error", "drop", "pass-through")


@dataclass(slots=True)
class Inbound:
    alias: str
    body: dict[str, Any]
    stream: bool
    # The client asked for the usage chunk itself (else the gateway removes it).
    wants_usage: bool


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit} bytes allowed.")
    try:
        # A chunked body has no length up front; read() stops at the app's client_max_size.
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestTooLarge(f"The request body is larger than the {limit} bytes allowed.") from None
    if len(raw) > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit} bytes allowed.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _validate(operation: str, body: dict[str, Any]) -> None:
    try:
        BODIES[operation].model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise InvalidRequest(
            f"Invalid value for '{param}': {err['msg']}." if param else err["msg"], param=param
        ) from None


def _apply_extra_parameters(operation: str, body: dict[str, Any], mode: str | None) -> None:
    if mode is None or mode == "pass-through":
        return
    if mode not in EXTRA_MODES:
        raise InvalidRequest(
            f"Header 'extra-parameters' must be one of {', '.join(EXTRA_MODES)}, not {mode!r}.",
            param="extra-parameters",
        )
    extra = [k for k in body if k not in KNOWN[operation]]
    if not extra:
        return
    if mode == "error":
        raise ExtraParametersNotAllowed(
            f"Extra parameters {extra} are not allowed when the 'extra-parameters' header "
            "is 'error'. Remove them, or send 'extra-parameters: pass-through' or 'drop'.",
            param=extra[0],
        )
    for key in extra:
        del body[key]


def model_name(
    body: Mapping[str, Any], headers: Mapping[str, str], path_name: str | None, from_headers: bool
) -> str:
    if path_name is not None:
        return path_name  # /openai/deployments/{name}/...: the path decides, body `model` is ignored
    model = body.get("model")
    if model is None and from_headers:
        for header in MODEL_HEADERS:
            model = headers.get(header)
            if model:
                break
    if not model:
        raise NoModelName(
            "Could not find a reference to a model in the request. Please provide a model "
            "name as a string under the 'model' parameter in the request body.",
            param="model",
        )
    return str(model)


def parse(
    operation: str,
    body: dict[str, Any],
    headers: Mapping[str, str],
    path_name: str | None,
    from_headers: bool,
) -> Inbound:
    _validate(operation, body)
    alias = model_name(body, headers, path_name, from_headers)
    _apply_extra_parameters(operation, body, headers.get("extra-parameters"))
    stream = body.get("stream") is True
    options = body.get("stream_options")
    wants_usage = bool(stream and isinstance(options, dict) and options.get("include_usage"))
    return Inbound(alias, body, stream, wants_usage)
