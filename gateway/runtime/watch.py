"""The config file watched for changes, besides SIGHUP: Kubernetes updates a mounted
ConfigMap by swapping a symlink (`..data`), which sends no signal. The file is looked at
every `server.config_watch_seconds`: its identity through the symlinks (device, inode,
size, mtime) first, its content's digest only when that moved, and a reload only when the
content did (a touch, or a swap to the same content, reloads nothing).

Polling rather than inotify: it sees a symlink swap in any directory above the file, costs
one stat per interval, and needs no dependency."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gateway.runtime.live import LIVE, config_version
from gateway.runtime.reload import reload

log = logging.getLogger("gateway.runtime.reload")


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)  # follows the symlinks, as reading the file does
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


async def _watch(app: web.Application, path: Path) -> None:
    seen = _identity(path)
    while True:
        interval = app[LIVE].config.server.config_watch_seconds
        if not interval:
            return
        await asyncio.sleep(interval)
        now = _identity(path)
        if now == seen or now is None:  # unchanged, or gone mid-swap: look again later
            continue
        seen = now
        if config_version(path) == app[LIVE].version:
            continue
        log.info("config file %s changed: reloading", path)
        try:
            reload(app, path)
        except Exception as exc:  # the watcher must outlive any one bad reload
            log.error("reload of %s failed: %s", path, type(exc).__name__)


async def watch_ctx(app: web.Application) -> AsyncIterator[None]:
    path = app[LIVE].path
    task = None
    if path is not None and app[LIVE].config.server.config_watch_seconds:
        task = asyncio.get_running_loop().create_task(_watch(app, path))
    yield
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
