"""Signing in with an admin key, and out. The key is checked as the admin API checks it
(`admin.auth`), so that a consumer's key never signs in; it is exchanged for a session
and never kept, shown or logged. The login form carries a token of its own, matched
against a cookie set with the form (a session does not exist yet to hold one)."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from gateway.admin.auth import admin_key_name, admin_listener
from gateway.console import sessions
from gateway.console.forms import Login, read
from gateway.console.guard import redirect
from gateway.console.render import html
from gateway.console.state import SESSION
from gateway.core.errors import InvalidRequest

LOGIN_COOKIE = "mg_console_login"
LOGIN_TTL_S = 1800
# Fixed messages for ?error= and ?done= (no text is taken from the query string).
MESSAGES = {"logged_out": "You are signed out.", "expired": "Your session ended: sign in again.",
            "entra": "Microsoft sign-in did not complete: try again.",
            "entra_state": "Microsoft sign-in was refused: it did not start from this page."}


def _entra_offered(request: web.Request) -> bool:
    entra = admin_listener(request).entra
    return entra is not None and bool(entra.client_id)


def _form(request: web.Request, status: int = 200, error: str | None = None) -> web.Response:
    token = request.cookies.get(LOGIN_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(24)
    admin = admin_listener(request)
    response = html(request, "login.html", status, login_csrf=token, error=error,
                    message=MESSAGES.get(request.query.get("done", "")),
                    problem=MESSAGES.get(request.query.get("error", "")),
                    keys=bool(admin.api_keys), entra=_entra_offered(request))
    sessions.set_cookie(request, response, LOGIN_COOKIE, token, LOGIN_TTL_S, path="/ui/login")
    return response


async def form(request: web.Request) -> web.Response:
    if await sessions.current(request) is not None:
        return redirect("/ui/usage")
    return _form(request)


async def submit(request: web.Request) -> web.Response:
    admin = admin_listener(request)
    try:
        login = read(Login, await request.post())
    except InvalidRequest:
        return _form(request, 400, "Enter an admin key.")
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(login.csrf.encode(), expected.encode()):
        return _form(request, 403, "The form expired: try again.")
    name = admin_key_name(admin, login.key)
    if name is None:
        # Consumers' keys included: only admin.api_keys sign in here.
        return _form(request, 401, "That is not an admin key.")
    response = redirect("/ui/usage")
    await sessions.open_session(request, response, f"key:{name}")
    response.del_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


async def logout(request: web.Request) -> web.Response:
    response = redirect("/ui/login?done=logged_out")
    await sessions.close_session(request, response, request[SESSION])
    return response
