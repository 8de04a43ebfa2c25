"""/healthz (the process answers) and /readyz (it has a config and is not draining)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(slots=True)
class Lifecycle:
    ready: bool = False  # the runtime is built
    draining: bool = False  # SIGTERM came: finishing what is in flight


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[LIFECYCLE]
    if state.draining:
        return web.json_response({"status": "draining"}, status=503)
    if not state.ready:
        return web.json_response({"status": "starting"}, status=503)
    return web.json_response({"status": "ready"})
