"""/healthz (the process answers) and /readyz (it has a config and is not draining)."""

from __future__ import annotations

from aiohttp import web

from gateway.core.replies import json_response
from gateway.runtime.live import LIFECYCLE


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[LIFECYCLE]
    if state.draining:
        return json_response({"status": "draining"}, status=503)
    if not state.ready:
        return json_response({"status": "starting"}, status=503)
    return json_response({"status": "ready"})
