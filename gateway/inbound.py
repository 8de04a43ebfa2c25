"""Reading a client request: size limit, JSON, field types, the model name and
the `extra-parameters` rule. Everything here is client input, so every failure
is a clear 400/413, never an exception that escapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.apis import Api
from gateway.errors import (
    ExtraParametersNotAllowed,
    InvalidRequest,
    NoModelName,
    RequestTooLarge,
)

MODEL_HEADERS = ("x-ms-model-mesh-model-name", "azureml-model-deployment")


EXTRA_MODES = ("error", "drop", "pass-through")


@dataclass(slots=True)
class Inbound:
    alias: str
    body: dict[str, Any]
    stream: bool


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


def _apply_extra_parameters(api: Api, body: dict[str, Any], mode: str | None) -> None:
    if mode is None or mode == "pass-through":
        return
    if mode not in EXTRA_MODES:
        raise InvalidRequest(
            f"Header 'extra-parameters' must be one of {', '.join(EXTRA_MODES)}, not {mode!r}.",
            param="extra-parameters",
        )
    extra = [k for k in body if k not in api.known]
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
    api: Api,
    body: dict[str, Any],
    headers: Mapping[str, str],
    path_name: str | None,
    from_headers: bool,
) -> Inbound:
    api.validate(body)
    alias = model_name(body, headers, path_name, from_headers)
    _apply_extra_parameters(api, body, headers.get("extra-parameters"))
    return Inbound(alias, body, api.is_stream(body))
