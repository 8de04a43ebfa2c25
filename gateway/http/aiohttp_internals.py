"""Every use of aiohttp's private attributes, in one place, each for a reason its public
API does not cover; `tests/unit/gateway/http/test_aiohttp_internals.py` fails loudly on
an aiohttp that renamed or removed one. The floor in pyproject.toml (3.14: the first
with `web.RequestKey`) and this test are what keep an upgrade safe.

- `ignore_further_input`: a connection that got its 408 is half-closed, and what the
  client still sends must be dropped unread (closing at once would send a reset that can
  destroy the answer before the client reads it). aiohttp's `_force_close` is exactly
  that flag; its public `force_close()` also closes the transport.
- `start_site`: `web.TCPSite.start` with our protocol factory. aiohttp builds the
  protocol inside `Server.__call__`, and a site cannot be given another factory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

# (class, attribute) pairs used here, checked by the test against the installed aiohttp.
USED = (
    (web.RequestHandler, "_force_close"),
    (web.BaseRunner, "_reg_site"),
    (web.TCPSite, "_server"),
    (web.TCPSite, "_host"),
    (web.TCPSite, "_port"),
    (web.TCPSite, "_backlog"),
    (web.TCPSite, "_reuse_address"),
    (web.TCPSite, "_reuse_port"),
    (web.TCPSite, "_bound_port"),
    (web.TCPSite, "_runner"),
)


def site_runner(site: web.TCPSite) -> web.BaseRunner:
    """The runner a site belongs to (its server is the app's request handler factory)."""
    return site._runner


def ignore_further_input(handler: web.RequestHandler) -> None:
    handler._force_close = True


async def start_site(site: web.TCPSite, protocol: Callable[[], asyncio.Protocol]) -> None:
    """What `web.TCPSite.start` does, with `protocol` making each connection's protocol."""
    site._runner._reg_site(site)
    loop = asyncio.get_running_loop()
    site._server = server = await loop.create_server(
        protocol, site._host, site._port, backlog=site._backlog,
        reuse_address=site._reuse_address, reuse_port=site._reuse_port,
    )
    sockets = server.sockets
    site._bound_port = sockets[0].getsockname()[1] if sockets else site._port
