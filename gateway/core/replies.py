"""The two things every answer the gateway makes itself needs: a request id, and a JSON
body. One of each, so that every route and every error names its request the same way
and encodes JSON the same way (orjson, `application/json`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import orjson
from aiohttp import web

# Request ids are drawn from the OS's random source 256 at a time: one system call per
# 256 requests, not one each. A forked worker starts with an empty pool, so that no two
# processes hand out the same ids.
_BATCH = 256
_ids: list[str] = []


def _forget() -> None:
    _ids.clear()


os.register_at_fork(after_in_child=_forget)


def request_id() -> str:
    """A new request id: 128 random bits as 32 hex digits. The gateway's own, never the
    client's (a client's `x-ms-client-request-id` is echoed, not trusted as ours)."""
    if not _ids:
        pool = os.urandom(16 * _BATCH).hex()
        _ids.extend(pool[i:i + 32] for i in range(0, len(pool), 32))
    return _ids.pop()


def json_response(data: object, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")
