"""Consumers and keys changed on any replica reach this one: a cheap query of the
change counter every `admin.refresh_seconds`, and when it moved, the whole snapshot
read again into the live holder and the runtime rebuilt with it (backends keep their
health). A database that cannot be read leaves the last
snapshot in force."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.config import StartupError
from gateway.database.access import DATABASE
from gateway.database.errors import unavailable
from gateway.runtime.live import LIVE
from gateway.runtime.reload import rebuild

log = logging.getLogger("gateway.team")


async def refresh(app: web.Application) -> bool:
    """Read the team again if it changed; True when it had."""
    team, live = app[DATABASE].team, app[LIVE]
    if live.team is not None and await team.version() == live.team.version:
        return False
    live.team = await team.snapshot()
    rebuild(app)
    return True


async def _loop(app: web.Application) -> None:
    while True:
        await asyncio.sleep(app[LIVE].config.admin.refresh_seconds)
        try:
            await refresh(app)
        except unavailable() as exc:
            log.warning("consumers and keys not refreshed: %s", type(exc).__name__)
        except StartupError as exc:
            log.error("consumers and keys from the database cannot be used: %s", exc)


async def team_ctx(app: web.Application) -> AsyncIterator[None]:
    """Before the runtime is built: the first snapshot; then the loop, in its own task."""
    await refresh(app)
    task = asyncio.get_running_loop().create_task(_loop(app))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
