"""Minimal pass-through proxies, to measure what an upstream HTTP client costs
before any gateway logic: `python -m tests.benchmarks.baselines
aiohttp|pyreqwest|pyqwest PORT UPSTREAM_URL`. The benchmark runs them with
`--baselines` (pyreqwest and pyqwest only when installed; neither is a dependency of
the gateway, see docs/benchmark.md)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web

Forward = Callable[[bytes], Awaitable[tuple[int, bytes]]]


def aiohttp_forward(upstream: str) -> Forward:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def forward(body: bytes) -> tuple[int, bytes]:
        async with session.post(upstream, data=body,
                                headers={"Content-Type": "application/json"}) as r:
            return r.status, await r.read()

    return forward


def pyreqwest_forward(upstream: str) -> Forward:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().build()

    async def forward(body: bytes) -> tuple[int, bytes]:
        request = client.post(upstream).body_bytes(body).header(
            "Content-Type", "application/json").build()
        response = await request.send()
        return response.status, bytes(await response.bytes())

    return forward


def pyqwest_forward(upstream: str) -> Forward:
    from pyqwest import Client, HTTPTransport

    client = Client(HTTPTransport(follow_redirects=False, enable_gzip=False,
                                  enable_brotli=False, enable_zstd=False, enable_otel=False))

    async def forward(body: bytes) -> tuple[int, bytes]:
        async with client.stream("POST", upstream, [("Content-Type", "application/json")],
                                 body) as r:
            data = b"".join([bytes(c) async for c in r.content])
            return r.status, data

    return forward


FORWARDS = {"aiohttp": aiohttp_forward, "pyreqwest": pyreqwest_forward,
            "pyqwest": pyqwest_forward}


async def serve(kind: str, port: int, upstream: str) -> None:
    forward = FORWARDS[kind](upstream)

    async def handle(request: web.Request) -> web.Response:
        status, data = await forward(await request.read())
        return web.Response(body=data, status=status, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
