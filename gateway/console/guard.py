"""Every console request, before its page: the admin listener's rule (404 anywhere else,
and when the admin API is off), the origin of a state-changing request, the session (a
page without one goes to the login page, the live data gets 401) and its CSRF token;
and the headers every console answer carries: a strict Content-Security-Policy (no
inline script or style, nothing from elsewhere), no framing, no referrer.

A refusal on a page is an HTML page saying why, with the error's status; anything else
keeps the contract's JSON shape (the gateway's own middleware renders it)."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from gateway.admin.auth import admin_listener
from gateway.console import sessions
from gateway.console.state import SESSION, Handler
from gateway.core.errors import GatewayError, RequestTooLarge
from gateway.database.errors import DatabaseUnavailable, unavailable
from policies import PermissionDenied, PolicyError, Unauthenticated

log = logging.getLogger("gateway.console")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The assets' URLs carry their content's digest (`assets`): a browser keeps them.
ASSET_CACHE = "public, max-age=31536000, immutable"
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
# No session needed: the sign-in itself, and the stylesheet and script of its page.
PUBLIC = ("/ui/login", "/ui/static/")
# The largest form the console has is a consumer's, a few KiB.
MAX_FORM_BYTES = 256 * 1024


class DatabaseDown(GatewayError):
    status, code = 503, "database_unavailable"


def own_origin(request: web.Request) -> str:
    """This console's origin as the browser sees it: TLS may end at a proxy in front."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    scheme = forwarded if forwarded in ("http", "https") else request.scheme
    return f"{scheme}://{request.host}"


def same_origin(request: web.Request) -> None:
    """A state-changing request must come from the console's own pages. Browsers say
    where a request comes from in Sec-Fetch-Site; one that does not send it must send
    an Origin that is this one (with Referrer-Policy: no-referrer, a browser sends
    `Origin: null` on a form's POST, so Sec-Fetch-Site is what browsers are judged by)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site != "same-origin":
            raise PermissionDenied("Refused: this request did not come from the console's own "
                                   f"pages (Sec-Fetch-Site: {site[:20]}).")
        return
    if request.headers.get("Origin") != own_origin(request):
        raise PermissionDenied("Refused: this request did not come from the console's own pages "
                               "(no matching Origin).")


async def check_csrf(request: web.Request, expected: str) -> None:
    from gateway.console.forms import Csrf, read  # pydantic models: with the first form only

    try:
        given = read(Csrf, await request.post()).csrf
    except GatewayError:
        given = ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise PermissionDenied("Refused: the form's CSRF token is missing or wrong. Reload the "
                               "page and try again.")


def redirect(location: str) -> web.Response:
    # Returned, never raised: the gateway's middleware turns a raised HTTPException
    # into an error.
    return web.Response(status=303, headers={"Location": location})


def _wants_page(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


@web.middleware
async def frame(request: web.Request, handler: Handler) -> web.StreamResponse:
    admin_listener(request)  # not here: the contract's 404, like /admin/v1
    try:
        try:
            return await _checked(request, handler)
        except ConnectionResetError:
            raise  # the client went away: the gateway's middleware records it
        except unavailable() as exc:
            # What an operator is told: the driver's first line, never its statement.
            log.warning("console: the database failed: %s", DatabaseUnavailable.of(exc))
            raise DatabaseDown("The database cannot be reached right now: try again shortly.") \
                from None
    except (GatewayError, PolicyError) as exc:
        if not _wants_page(request):
            raise
        from gateway.console.render import error_page  # Jinja2: only once a page is asked for

        return error_page(request, exc)


async def _checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in SAFE:
        if (request.content_length or 0) > MAX_FORM_BYTES:
            raise RequestTooLarge("A console form is at most 256 KiB.")
        same_origin(request)
    if not request.path.startswith(PUBLIC):
        session = await sessions.current(request)
        if session is None:
            if request.method == "GET" and _wants_page(request):
                return redirect("/ui/login")
            raise Unauthenticated("Sign in to the console first.")
        request[SESSION] = session
        if request.method not in SAFE:
            await check_csrf(request, session.csrf)
    return await handler(request)


async def headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: after the gateway's own headers, every console answer."""
    response.headers.update(HEADERS)
    if request.path.startswith("/ui/static/") and response.status == 200:
        response.headers["Cache-Control"] = ASSET_CACHE
