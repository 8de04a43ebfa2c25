"""What the console keeps between requests (`CONSOLE`, made before the app starts, since a
started app's own state is frozen): the template environment and the assets, both
loaded on first use, and the Entra ID-token validator of the sign-in. Also how a page
reaches the gateway's own app, whose functions (the admin API's) it calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from gateway.database.console_sessions import StoredSession


@dataclass(slots=True)
class ConsoleState:
    templates: Any = None  # jinja2.Environment, once the first page is rendered
    assets: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (body, version)
    # (tenant, client id, JWKS URL) -> policies.auth.entra.EntraValidator
    validators: dict[tuple[str, str, str | None], Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Session:
    """The signed-in operator of this request: the actor their changes are recorded under."""

    token: str
    stored: StoredSession

    @property
    def actor(self) -> str:
        return self.stored.actor

    @property
    def csrf(self) -> str:
        return self.stored.csrf


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONSOLE = web.AppKey("console", ConsoleState)
SESSION = web.RequestKey("console_session", Session)


def state(request: web.Request) -> ConsoleState:
    return request.config_dict[CONSOLE]
