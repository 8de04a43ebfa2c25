"""Running apps on sockets: one process, or N worker processes sharing a port
(SO_REUSEPORT), with a graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from gateway.app import create_app
from gateway.config import GatewayConfig, ServerConfig
from gateway.database.child import migrate_apart
from gateway.http.connections import CONNECTIONS, GatewaySite
from gateway.runtime.live import LIFECYCLE, LIVE
from gateway.runtime.reload import reload

log = logging.getLogger("gateway")

# After SIGTERM, /readyz answers 503 for this long before the listener closes, so
# that a load balancer stops sending new requests first.
READY_GRACE_S = 2.0


MAX_HEADER_BYTES = 32 * 1024
LINGER_S = 2.0
GC_THRESHOLD = 20_000


class _DropParseErrors(logging.Filter):
    """aiohttp logs a malformed request with its traceback, and the traceback quotes
    the offending header line: an oversized `Authorization` would put a token in the
    log. The client already got its 400; the log line adds only risk."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, BadHttpMessage)


def _quiet_parse_errors() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _DropParseErrors) for f in logger.filters):
        logger.addFilter(_DropParseErrors())


async def start(
    app: web.Application, host: str, port: int, *, reuse_port: bool = False,
    shutdown_timeout: float = 30.0, limits: ServerConfig | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0 = any free port); returns the runner and the port.
    With `limits` (the gateway's server settings), connections get the gateway's
    timeouts, cap and JSON parser errors (`connections`); without, aiohttp's own (the
    simulator and test servers)."""
    _quiet_parse_errors()
    handler_args: dict[str, Any] = {
        "access_log": None,
        # Room for large Entra tokens, so that an oversized one reaches the gateway's own
        # check and gets a JSON 401 rather than a parser error.
        "max_line_size": MAX_HEADER_BYTES, "max_field_size": MAX_HEADER_BYTES,
    }
    if limits is not None:
        handler_args["keepalive_timeout"] = limits.keepalive_seconds
        # After an answer given before the body was read (a 401, a 408), aiohttp reads
        # and drops the rest for this long so that the client sees the answer before
        # the connection closes; its default of 10 s would let a slow client keep
        # the connection that long.
        handler_args["lingering_time"] = LINGER_S
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=shutdown_timeout,
                           **handler_args)
    try:
        await runner.setup()
        site: web.TCPSite
        if limits is not None:
            site = GatewaySite(runner, host, port, app[CONNECTIONS], handler_args,
                               reuse_port=reuse_port or None, backlog=2048)
            admin_port = app[LIVE].config.admin.port
            if admin_port:  # the admin API's own listener (see gateway.admin.auth)
                await GatewaySite(runner, host, admin_port, app[CONNECTIONS], handler_args,
                                  reuse_port=reuse_port or None).start()
        else:
            site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=2048)
        await site.start()
    except BaseException:
        # Close what the contexts already opened (the HTTP session, Redis).
        await runner.cleanup()
        raise
    return runner, site.port


def run_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


PARENT_CHECK_S = 1.0


async def _wait_for_stop(parent: int | None = None) -> None:
    """Until SIGTERM or SIGINT; a worker also stops when its parent is gone (killed
    without passing the signal on), rather than serving on the port forever."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if parent is None:
        await stop.wait()
        return
    while os.getppid() == parent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PARENT_CHECK_S)
            return
    log.warning("the parent process %d is gone: draining and stopping", parent)


async def serve_once(
    config: GatewayConfig, path: Path | None = None, *, reuse_port: bool = False,
    parent: int | None = None,
) -> None:
    app = create_app(config, config_path=path)
    server = config.server
    runner, port = await start(
        app, server.host, server.port, reuse_port=reuse_port,
        shutdown_timeout=server.drain_seconds, limits=server,
    )
    log.info("model-gateway pid %d listening on http://%s:%d", os.getpid(), server.host, port)
    # Everything allocated so far lives as long as the process: keep it out of the
    # collector's full passes, and collect the young generation less often (a request
    # allocates a few hundred objects; the default threshold of 700 ran a pass every
    # couple of requests).
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    if path is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload, app)
    await _wait_for_stop(parent)
    app[LIFECYCLE].draining = True
    log.info("draining: /readyz is 503; in-flight requests get up to %gs", server.drain_seconds)
    await asyncio.sleep(min(READY_GRACE_S, server.drain_seconds))
    await runner.cleanup()


def _worker(config: GatewayConfig, path: Path | None, parent: int) -> None:
    run_loop(lambda: serve_once(config, path, reuse_port=True, parent=parent))


def serve(config: GatewayConfig, workers: int = 1, path: Path | None = None) -> int:
    """Serve until SIGTERM; SIGHUP reloads the config file at `path`."""
    migrate_apart(config)
    if workers <= 1:
        run_loop(lambda: serve_once(config, path))
        return 0
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_worker, args=(config, path, os.getpid()))
                 for _ in range(workers)]
    for process in processes:
        process.start()

    def forward(sig: int, _: object) -> None:
        for process in processes:
            if process.pid is not None:
                os.kill(process.pid, sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for process in processes:
        process.join()
    return max((p.exitcode or 0) for p in processes)
