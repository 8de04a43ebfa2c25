"""The private aiohttp attributes the gateway uses (gateway/http/aiohttp_internals.py)
still exist, with the meaning relied on, on the installed aiohttp: an upgrade that
changed one fails here, by name, rather than in production."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from gateway.http import aiohttp_internals
from gateway.http.aiohttp_internals import USED, ignore_further_input, site_runner, start_site


async def test_every_private_attribute_used_is_there() -> None:
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    assert runner.server is not None
    handler = web.RequestHandler(runner.server, loop=asyncio.get_running_loop())
    instances = {web.TCPSite: site, web.BaseRunner: runner, web.RequestHandler: handler}
    missing = [f"{cls.__name__}.{name}" for cls, name in USED
               if not hasattr(instances[cls], name) and not hasattr(cls, name)]
    await runner.cleanup()
    assert not missing, f"aiohttp {aiohttp.__version__} no longer has {missing}"


async def test_a_site_started_through_them_serves_and_stops() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    assert site_runner(site) is runner
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    await start_site(site, lambda: web.RequestHandler(server, loop=loop))
    port = site._bound_port
    assert port
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as r:
        assert await r.text() == "hello"
    assert site in runner.sites  # registered with its runner, so cleanup stops it
    await runner.cleanup()


def test_ignoring_input_sets_the_flag_aiohttp_reads() -> None:
    import inspect

    loop = asyncio.new_event_loop()
    try:
        handler = web.RequestHandler(web.Server(lambda r: None, loop=loop), loop=loop)  # type: ignore[arg-type, return-value]
        ignore_further_input(handler)
        assert handler._force_close is True
        # data_received drops input when the flag is set: the behaviour relied on.
        assert "_force_close" in inspect.getsource(web.RequestHandler.data_received)
    finally:
        loop.close()
    assert aiohttp_internals.__doc__
