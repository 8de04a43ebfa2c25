"""The gateway's own errors and the one JSON rendering every error gets.

    Exception
     ├── policies.errors.PolicyError     a policy said no (401, 403, 429, 400, 503)
     └── GatewayError                    the gateway itself answers with an error
          ├── InvalidRequest             400 invalid_request: malformed JSON, wrong types, bad HTTP
          │    └── UnreadableBody        400 invalid_request, the connection closed after it
          ├── NoModelName                400 no_model_name
          ├── ExtraParametersNotAllowed  400 extra_parameters_not_allowed
          ├── UnsupportedOperation       400 unsupported_operation: batch, files, realtime ...
          ├── UnsupportedParameter       400 unsupported_parameter: a field the backend's API
          │                                  cannot carry (translation refuses, never drops)
          ├── UnknownModel               404 unknown_model / DeploymentNotFound
          ├── RouteNotFound              404 not_found / 405 method_not_allowed
          ├── ResponseNotFound           404 response_not_found: a stored response not the caller's
          ├── RequestTimeout             408 request_timeout: headers or body too slow
          ├── Conflict                   409 conflict: an admin change that clashes (a name taken)
          ├── RequestTooLarge            413 request_too_large
          ├── ExpectationFailed          417 expectation_failed: an Expect other than 100-continue
          ├── UnsupportedEncoding        415 unsupported_content_encoding
          ├── HeadersTooLarge            431 request_headers_too_large
          ├── TooManyInFlight            429 too_many_requests: a consumer's in-flight cap
          ├── AllBackendsThrottled       429 429: every backend cooling down after a 429
          ├── UpstreamError              502 upstream_error: no usable answer from upstream
          ├── Unavailable                503 server_busy: connection or in-flight cap reached
          ├── UpstreamAuthFailed         503 upstream_auth_failed: no token for the upstream
          ├── NoHealthyBackend           503 no_healthy_backend
          └── UpstreamTimeout            504 upstream_timeout

Body: {"error": {"code", "message", "type", "param", ...details}} on OpenAI- and
Azure-style routes; {"type": "error", "error": {"type", "message"}} on Anthropic
routes, with Anthropic's error types, so that each SDK raises what it should.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from gateway.core.flavours import Flavour
from policies.errors import PolicyError, Unauthenticated


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    close_connection: ClassVar[bool] = False

    def __init__(
        self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra_headers = headers or {}


class InvalidRequest(GatewayError):
    status, code = 400, "invalid_request"


class UnreadableBody(InvalidRequest):
    """A body that does not match its Content-Encoding or Transfer-Encoding: the
    connection's parser cannot go on after it."""

    close_connection = True


class NoModelName(GatewayError):
    status, code = 400, "no_model_name"


class ExtraParametersNotAllowed(GatewayError):
    status, code = 400, "extra_parameters_not_allowed"


class UnsupportedOperation(GatewayError):
    status, code = 400, "unsupported_operation"


class UnsupportedParameter(GatewayError):
    status, code = 400, "unsupported_parameter"


class UnknownModel(GatewayError):
    status, code = 404, "unknown_model"


class RouteNotFound(GatewayError):
    status, code = 404, "not_found"


class ResponseNotFound(GatewayError):
    status, code = 404, "response_not_found"


class MethodNotAllowed(GatewayError):
    status, code = 405, "method_not_allowed"


class Conflict(GatewayError):
    status, code = 409, "conflict"


class RequestTimeout(GatewayError):
    status, code = 408, "request_timeout"
    close_connection = True  # the rest of a slow body is not worth waiting for


class RequestTooLarge(GatewayError):
    status, code = 413, "request_too_large"


class ExpectationFailed(GatewayError):
    status, code = 417, "expectation_failed"


class UnsupportedEncoding(GatewayError):
    status, code = 415, "unsupported_content_encoding"


class HeadersTooLarge(GatewayError):
    status, code = 431, "request_headers_too_large"


class TooManyInFlight(GatewayError):
    status, code = 429, "too_many_requests"


class Unavailable(GatewayError):
    status, code = 503, "server_busy"


class UpstreamError(GatewayError):
    status, code = 502, "upstream_error"


class UpstreamAuthFailed(GatewayError):
    status, code = 503, "upstream_auth_failed"


class AllBackendsThrottled(GatewayError):
    status, code = 429, "429"


class NoHealthyBackend(GatewayError):
    status, code = 503, "no_healthy_backend"


class UpstreamTimeout(GatewayError):
    status, code = 504, "upstream_timeout"


class InternalError(GatewayError):
    status, code = 500, "internal_error"


def _type_for(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"


def error_code(exc: GatewayError | PolicyError, flavour: Flavour) -> str:
    """The code a client of this flavour expects for the error."""
    if isinstance(exc, UnknownModel) and flavour is Flavour.AZURE_OPENAI:
        return "DeploymentNotFound"
    if isinstance(exc, Unauthenticated) and flavour is not Flavour.OPENAI and exc.code == "invalid_api_key":
        return "401"  # what Azure's key gateway answers
    return exc.code


def error_body(exc: GatewayError | PolicyError, flavour: Flavour,
               status: int | None = None) -> dict[str, Any]:
    """The body of an error; `status` when it is not the error's own (an upstream's)."""
    status = status or exc.status
    if flavour is Flavour.ANTHROPIC:
        return {"type": "error", "error": {"type": anthropic_type(status), "message": exc.message}}
    error: dict[str, Any] = {
        "code": error_code(exc, flavour),
        "message": exc.message,
        "type": _type_for(status),
        "param": exc.param if isinstance(exc, GatewayError) else None,
    }
    if isinstance(exc, PolicyError):
        error.update(exc.details())
    return {"error": error}


# Anthropic's error types by status (its SDK picks the exception class by status,
# and reads `error.type`).
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                    403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
                    408: "timeout_error", 409: "conflict_error", 413: "request_too_large",
                    429: "rate_limit_error", 500: "api_error", 502: "api_error",
                    503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}


def anthropic_type(status: int) -> str:
    return _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def render_error(exc: GatewayError | PolicyError, flavour: Flavour) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of an error, for a response or a raw socket write."""
    headers = exc.extra_headers if isinstance(exc, GatewayError) else exc.headers()
    return exc.status, orjson.dumps(error_body(exc, flavour)), headers


def error_response(exc: GatewayError | PolicyError, flavour: Flavour) -> web.Response:
    status, body, headers = render_error(exc, flavour)
    response = web.Response(status=status, body=body, content_type="application/json",
                            headers=headers)
    if isinstance(exc, GatewayError) and exc.close_connection:
        response.force_close()
    return response
