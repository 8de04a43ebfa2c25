"""The console's stylesheet, script and icon, shipped in the package (no CDN, no build
step): read once, served with a digest of their content in the URL so that a browser
keeps them and a page costs one request."""

from __future__ import annotations

import hashlib
from importlib import resources

from aiohttp import web

from gateway.console.state import ConsoleState, state
from gateway.core.errors import RouteNotFound

TYPES = {"console.css": "text/css", "console.js": "text/javascript", "icon.svg": "image/svg+xml"}


def load(console: ConsoleState, name: str) -> tuple[bytes, str]:
    found = console.assets.get(name)
    if found is None:
        body = resources.files("gateway.console").joinpath("static", name).read_bytes()
        found = console.assets[name] = (body, hashlib.sha256(body).hexdigest()[:12])
    return found


def url(console: ConsoleState, name: str) -> str:
    return f"/ui/static/{name}?v={load(console, name)[1]}"


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in TYPES:
        raise RouteNotFound(f"No console asset {name}.")
    body, _ = load(state(request), name)
    return web.Response(body=body, content_type=TYPES[name],
                        charset="utf-8" if name != "icon.svg" else None)
