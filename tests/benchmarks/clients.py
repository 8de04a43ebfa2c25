"""Does an HTTP client close the upstream when the gateway gives up on it? The
benchmark chooses the upstream client by speed; this checks the other half of the
contract (DESIGN: streaming, cancellation and timeouts must hold):

    python -m tests.benchmarks.clients

For each client installed (aiohttp; pyreqwest and pyqwest when present) it starts a
local server and reports whether the server saw the connection close within 0.5 s
when the caller (1) times out waiting for the response headers, (2) leaves a streamed
body early, (3) is cancelled while reading a stream. A "no" means an upstream keeps
generating (and billing) tokens for a client that has gone.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from aiohttp import web

# Opens a streamed POST and yields an async iterator of body chunks; and a closer.
Open = Callable[[str], AbstractAsyncContextManager[AsyncIterator[Any]]]
Client = tuple[Open, Callable[[], Awaitable[None]]]


def aiohttp_open() -> Client:
    import aiohttp

    session = aiohttp.ClientSession()

    @asynccontextmanager
    async def open_(url: str) -> AsyncIterator[AsyncIterator[Any]]:
        async with session.post(url, data=b"{}") as response:
            yield response.content.iter_any()

    return open_, session.close


def pyreqwest_open() -> Client:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().build()

    async def chunks(reader: Any) -> AsyncIterator[Any]:
        while (chunk := await reader.read_chunk()) is not None:
            yield chunk

    @asynccontextmanager
    async def open_(url: str) -> AsyncIterator[AsyncIterator[Any]]:
        async with client.post(url).body_bytes(b"{}").build_streamed() as response:
            yield chunks(response.body_reader)

    return open_, client.close


def pyqwest_open() -> Client:
    from pyqwest import Client, HTTPTransport

    client = Client(HTTPTransport(enable_otel=False))

    @asynccontextmanager
    async def open_(url: str) -> AsyncIterator[AsyncIterator[Any]]:
        async with client.stream("POST", url, content=b"{}") as response:
            yield response.content

    async def close() -> None:
        pass  # the transport's pool is dropped with the process

    return open_, close


CLIENTS: dict[str, Callable[[], Client]] = {
    "aiohttp": aiohttp_open, "pyreqwest": pyreqwest_open, "pyqwest": pyqwest_open}


class Upstream:
    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def hang(self, request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.closed.set()
            raise
        return web.Response()

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(600):
                await response.write(b"data: {}\n\n")
                await asyncio.sleep(0.05)
        except (asyncio.CancelledError, ConnectionResetError):
            self.closed.set()
            raise
        return response


async def closes(upstream: Upstream, action: Callable[[], Awaitable[None]]) -> bool:
    upstream.closed.clear()
    await action()
    try:
        await asyncio.wait_for(upstream.closed.wait(), 0.5)
    except TimeoutError:
        return False
    return True


async def check(name: str, base: str, upstream: Upstream) -> list[bool]:
    open_, close = CLIENTS[name]()

    async def headers_timeout() -> None:
        try:
            async with asyncio.timeout(0.2), open_(base + "/hang"):
                pass
        except TimeoutError:
            pass

    async def leave_early() -> None:
        # A client that reads the rest before letting go is cut off after 2 s.
        try:
            async with asyncio.timeout(2), open_(base + "/stream") as chunks:
                await anext(aiter(chunks))
        except TimeoutError:
            pass

    async def cancel_reader() -> None:
        async def read() -> None:
            async with open_(base + "/stream") as chunks:
                async for _ in chunks:
                    pass

        task = asyncio.ensure_future(read())
        await asyncio.sleep(0.2)
        task.cancel()

    results = [await closes(upstream, action)
               for action in (headers_timeout, leave_early, cancel_reader)]
    await close()
    return results


async def main() -> None:
    upstream = Upstream()
    app = web.Application()
    app.router.add_post("/hang", upstream.hang)
    app.router.add_post("/stream", upstream.stream)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print("| client | headers timeout | body left early | reader cancelled |")
    print("|---|---|---|---|")
    for name in CLIENTS:
        if importlib.util.find_spec(name) is None:
            continue
        results = await check(name, f"http://127.0.0.1:{port}", upstream)
        print(f"| {name} | " + " | ".join("closed" if r else "NOT closed" for r in results) + " |")
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
