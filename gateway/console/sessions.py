"""Console sessions: an admin key or an Entra sign-in exchanged for a cookie holding a
random token (HttpOnly, SameSite=Strict, Secure over TLS, scoped to /ui). The session is
kept in the database (`gateway.database.console_sessions`), so that replicas share it
and a logout ends it everywhere. It ends after IDLE without use, and after MAX whatever;
and at once when the admin key it was opened with is removed from or replaced in the
config, or when Entra sign-in is turned off."""

from __future__ import annotations

import datetime
import hashlib
import secrets

from aiohttp import web

from gateway.config import AdminConfig
from gateway.console.state import Session
from gateway.database.access import DATABASE
from gateway.runtime.live import LIVE

COOKIE = "mg_console"
IDLE = datetime.timedelta(minutes=30)
MAX = datetime.timedelta(hours=8)
# A session's expiry is pushed back when a request finds less than this left of IDLE:
# one database write every few minutes of use, not one per request.
EXTEND_BELOW = IDLE - datetime.timedelta(minutes=5)


def proof(admin: AdminConfig, actor: str) -> str | None:
    """What ties a session to the credential it was opened with, as it is configured
    now; None when that credential is no longer an admin's."""
    kind, _, who = actor.partition(":")
    if kind == "key":
        digest = admin.api_keys.get(who)
        return hashlib.sha256(f"key:{who}:{digest}".encode()).hexdigest() if digest else None
    if kind == "entra" and admin.entra is not None and admin.entra.client_id:
        return hashlib.sha256(f"entra:{admin.entra.client_id}".encode()).hexdigest()
    return None


def secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               max_age: int, path: str = "/ui", same_site: str = "Strict") -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True,
                        secure=secure(request), samesite=same_site)


async def open_session(request: web.Request, response: web.StreamResponse, actor: str) -> None:
    """A new session for `actor` (never one the browser brought: no fixation)."""
    admin = request.config_dict[LIVE].runtime.config.admin
    tied = proof(admin, actor)
    if tied is None:  # the caller checked the credential a moment ago
        raise RuntimeError("a session for a credential that is not an admin's")
    token = secrets.token_urlsafe(32)
    now = datetime.datetime.now(datetime.UTC)
    await request.config_dict[DATABASE].sessions.open(token, actor, tied, secrets.token_urlsafe(32),
                                                      now + IDLE)
    set_cookie(request, response, COOKIE, token, int(MAX.total_seconds()))


async def current(request: web.Request) -> Session | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        return None
    database = request.config_dict[DATABASE]
    stored = await database.sessions.find(token)
    if stored is None:
        return None
    admin = request.config_dict[LIVE].runtime.config.admin
    if proof(admin, stored.actor) != stored.proof:
        await database.sessions.close(token)
        return None
    now = datetime.datetime.now(datetime.UTC)
    later = min(now + IDLE, stored.created_at + MAX)
    if stored.expires_at - now < EXTEND_BELOW and later > stored.expires_at:
        await database.sessions.extend(token, later)
    return Session(token, stored)


async def close_session(request: web.Request, response: web.StreamResponse,
                        session: Session) -> None:
    await request.config_dict[DATABASE].sessions.close(session.token)
    response.del_cookie(COOKIE, path="/ui")
