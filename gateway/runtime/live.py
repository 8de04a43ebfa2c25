"""The config in force and the runtime built from it (`LIVE`), read by every request.

A started aiohttp app's own state is frozen, so they live in this holder and are
replaced whole on a reload or a team change (`gateway.runtime.reload`, `gateway.team.sync`)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.runtime.snapshot import Runtime

if TYPE_CHECKING:
    from gateway.database.team import Snapshot


class Live:
    """The config in force and the runtime built from it."""

    __slots__ = ("config", "current", "last_reload", "loaded_at", "path", "team", "version")

    def __init__(self, config: GatewayConfig, path: Path | None = None) -> None:
        self.config = config
        # The consumers and keys last read from the database (None: not read yet), merged
        # into the runtime with the config's (gateway.team.sync keeps it current).
        self.team: Snapshot | None = None
        self.current: Runtime | None = None  # None until start-up built it
        self.path = path  # the file it came from, watched and reloaded (None: given in code)
        self.version = config_version(path)
        self.loaded_at = time.time()
        self.last_reload: dict[str, Any] | None = None  # {"at", "result", "error"?}

    @property
    def runtime(self) -> Runtime:
        if self.current is None:
            raise LookupError("the runtime is not built yet")
        return self.current

    @runtime.setter
    def runtime(self, runtime: Runtime) -> None:
        self.current = runtime


def config_version(path: Path | None) -> str:
    """What names a config in metrics, logs and the admin API: the first 12 hex digits of
    its file's SHA-256 ("inline" for a config given in code)."""
    if path is None:
        return "inline"
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "unreadable"


LIVE = web.AppKey("live", Live)


@dataclass(slots=True)
class Lifecycle:
    ready: bool = False  # the runtime is built
    draining: bool = False  # SIGTERM came: finishing what is in flight


LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
