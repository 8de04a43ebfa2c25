"""Reading a client request: size limit, JSON, field types, the model name and
the `extra-parameters` rule. Everything here is client input, so every failure
is a clear 400/413, never an exception that escapes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError

from gateway.apis import Api
from gateway.config import ServerConfig
from gateway.core.errors import (
    ExpectationFailed,
    ExtraParametersNotAllowed,
    InvalidRequest,
    NoModelName,
    RequestTimeout,
    RequestTooLarge,
    UnreadableBody,
    UnsupportedEncoding,
)

MODEL_HEADERS = ("x-ms-model-mesh-model-name", "azureml-model-deployment")
# What a model name from a header may hold: header bytes are not always UTF-8.
_NAME = re.compile(r"[\x21-\x7e]{1,256}")


EXTRA_MODES = ("error", "drop", "pass-through")


@dataclass(slots=True)
class Inbound:
    alias: str
    body: dict[str, Any]
    stream: bool


# What the structure check keeps of a body: quotes, brackets and commas.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{},')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
ENCODINGS = ("", "identity", "gzip", "x-gzip", "deflate")
# Below this size two counts over the body cost less than copying its structure out.
_SMALL = 8192


def check_shape(raw: bytes, max_depth: int, max_items: int) -> None:
    """Refuse JSON nested too deep or holding too many values before any parser (or
    Python code walking the result) spends time on it. Values are counted as the
    commas and opening brackets outside strings, plus one (every value but an empty
    container's absence). Only C-level bytes operations, and one pass over the whole
    body where it can be: the structure (quotes, brackets, commas) is kept by one
    `translate`, prose shrinks to a few per cent of itself, and every count after it is
    over that; the exact count only when the bounds cannot decide."""
    if len(raw) <= min(max_items, _SMALL) and raw.count(b"[") + raw.count(b"{") <= max_depth:
        return  # every value takes a byte; most requests are small, and this is cheapest
    flat = raw.translate(None, _NOT_STRUCTURE)
    openers = flat.count(b"[") + flat.count(b"{")
    if openers <= max_depth and (len(raw) <= max_items
                                 or openers + flat.count(b",") + 1 <= max_items):
        return
    if b"\\" in raw:
        # Escapes decide which quotes end a string: escaped backslashes, then escaped
        # quotes, are dropped first (each only when present: a search is cheaper than
        # a copy), and the structure kept again.
        cleaned = raw.replace(b"\\\\", b"") if b"\\\\" in raw else raw
        if b'\\"' in cleaned:
            cleaned = cleaned.replace(b'\\"', b"")
        if cleaned is not raw:
            flat = cleaned.translate(None, _NOT_STRUCTURE)
    # What lies outside strings: the even pieces between quotes.
    outside = b"".join(flat.split(b'"')[::2])
    if outside.count(b",") + outside.count(b"[") + outside.count(b"{") + 1 > max_items:
        raise _too_many(max_items)
    # The depth walks Python over each bracket: commas, as many again, dropped first.
    brackets = outside.translate(None, b",")
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > max_depth:
        raise _too_deep(max_depth)


def _too_many(limit: int) -> InvalidRequest:
    return InvalidRequest(f"The request body holds more than the {limit} JSON values allowed.")


def _too_deep(limit: int) -> InvalidRequest:
    return InvalidRequest(f"The request body's JSON is nested deeper than {limit} levels.")


async def expect_continue(request: web.Request) -> None:
    """`100 Continue` when the client waits for it (any other expectation is refused).
    Deferred until the body is read, after authentication: a caller that would be refused
    is refused before it sends its body."""
    expect = request.headers.get("Expect", "").lower()
    if expect and expect != "100-continue":
        raise ExpectationFailed("The only expectation this gateway meets is 100-continue.")
    if expect:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


async def read_json(request: web.Request, limits: ServerConfig) -> dict[str, Any]:
    limit = limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit} bytes allowed.")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        raise UnsupportedEncoding(
            "The request's Content-Encoding is not supported: send gzip, deflate or none.")
    await expect_continue(request)
    try:
        # A chunked body has no length up front; read() stops at the app's client_max_size.
        if request.content.is_eof():  # it came with the headers: nothing to wait for
            raw = await request.read()
        else:
            async with asyncio.timeout(limits.body_timeout_seconds):
                raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestTooLarge(f"The request body is larger than the {limit} bytes allowed.") from None
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {limits.body_timeout_seconds:g} s.") from None
    except (web.RequestPayloadError, ContentEncodingError):
        # The rest of this body cannot be read either, and aiohttp would try to drain it
        # after the answer, logging the parser's error as unhandled: it is marked read,
        # and the answer closes the connection (the parser cannot go on after it).
        request.content.feed_eof()
        raise UnreadableBody("The request body could not be read: it does not match its "
                             "Content-Encoding or Transfer-Encoding.") from None
    if len(raw) > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit} bytes allowed.")
    check_shape(raw, limits.max_json_depth, limits.max_json_items)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


async def defer_continue(request: web.Request) -> None:
    """The expect_handler of model routes: `100 Continue` waits for `read_json` (which
    also refuses any other expectation, in the contract's shape)."""


def _apply_extra_parameters(api: Api, body: dict[str, Any], mode: str | None) -> None:
    if mode is None or mode == "pass-through":
        return
    if mode not in EXTRA_MODES:
        raise InvalidRequest(
            f"Header 'extra-parameters' must be one of {', '.join(EXTRA_MODES)}.",
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
                if not _NAME.fullmatch(model):
                    raise InvalidRequest(f"Header {header!r} does not hold a model name.",
                                         param=header)
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
