"""The two things every answer the gateway makes itself needs: a request id, and a JSON
body. One of each, so that every route and every error names its request the same way
and encodes JSON the same way (orjson, `application/json`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import orjson
from aiohttp import web


def request_id() -> str:
    """A new request id: 128 random bits as 32 hex digits. The gateway's own, never the
    client's (a client's `x-ms-client-request-id` is echoed, not trusted as ours)."""
    return os.urandom(16).hex()


def json_response(data: object, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")
