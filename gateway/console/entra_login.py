"""Microsoft Entra sign-in for the console (OpenID Connect, authorization code with PKCE),
offered when `admin.entra.client_id` is set. The ID token is validated as the gateway
validates Entra tokens (`policies.auth.entra`: RS256, the tenant's JWKS, issuer,
expiry), with the app registration as its audience and the nonce of this sign-in; it
must carry one of `admin.entra.roles` (the admin API's own check). The state, nonce and
PKCE verifier of a sign-in live in a cookie of its own for ten minutes, so that the
browser may come back to any replica."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from pydantic import Field

from gateway.admin.auth import admin_listener, entra_admin
from gateway.config import AdminConfig
from gateway.console import sessions
from gateway.console.forms import Form, read
from gateway.console.guard import own_origin, redirect
from gateway.console.state import state
from gateway.core.errors import RouteNotFound
from gateway.runtime.live import LIVE
from gateway.upstream.client import SESSION as HTTP
from policies.auth.entra import EntraConfig, EntraValidator

log = logging.getLogger("gateway.console")

FLOW_COOKIE = "mg_console_oidc"
FLOW_PATH = "/ui/login/entra"
FLOW_TTL_S = 600
SCOPE = "openid profile"


class Callback(Form):
    code: str | None = Field(None, max_length=8192)
    state: str | None = Field(None, max_length=200)
    error: str | None = Field(None, max_length=200)


def _settings(request: web.Request) -> tuple[AdminConfig, str, str]:
    """The admin config, the tenant and the endpoints' base, if sign-in is configured."""
    admin = admin_listener(request)
    auth = request.config_dict[LIVE].runtime.config.auth.entra
    if admin.entra is None or not admin.entra.client_id or auth is None:
        raise RouteNotFound("Microsoft sign-in is not configured here (admin.entra.client_id).")
    tenant = admin.entra.tenant_id or auth.tenant_ids[0]
    return admin, tenant, f"{admin.entra.authority.rstrip('/')}/{tenant}/oauth2/v2.0"


def _redirect_uri(request: web.Request, admin: AdminConfig) -> str:
    assert admin.entra is not None
    return admin.entra.redirect_uri or own_origin(request) + FLOW_PATH + "/callback"


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def start(request: web.Request) -> web.Response:
    admin, _, base = _settings(request)
    assert admin.entra is not None and admin.entra.client_id
    flow_state, nonce, verifier = (secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                                   secrets.token_urlsafe(48))
    query = urlencode({
        "client_id": admin.entra.client_id, "response_type": "code", "response_mode": "query",
        "redirect_uri": _redirect_uri(request, admin), "scope": SCOPE, "state": flow_state,
        "nonce": nonce, "code_challenge": _challenge(verifier), "code_challenge_method": "S256"})
    response = redirect(f"{base}/authorize?{query}")
    # Lax, not Strict: the browser comes back from Microsoft's site with a top-level GET.
    sessions.set_cookie(request, response, FLOW_COOKIE, f"{flow_state}.{nonce}.{verifier}",
                        FLOW_TTL_S, path=FLOW_PATH, same_site="Lax")
    return response


def _refused(request: web.Request, problem: str) -> web.Response:
    response = redirect(f"/ui/login?error={problem}")
    response.del_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


async def callback(request: web.Request) -> web.Response:
    admin, tenant, base = _settings(request)
    assert admin.entra is not None and admin.entra.client_id
    answer = read(Callback, request.query)
    flow_state, nonce, verifier = [*request.cookies.get(FLOW_COOKIE, "").split("."), "", ""][:3]
    if not (flow_state and answer.state and hmac.compare_digest(flow_state, answer.state)):
        return _refused(request, "entra_state")
    if answer.error or not answer.code:
        log.warning("console sign-in: Entra answered %s", (answer.error or "no code")[:60])
        return _refused(request, "entra")
    tokens = await _redeem(request, admin, base, answer.code, verifier)
    id_token = tokens.get("id_token") if tokens else None
    if not isinstance(id_token, str):
        return _refused(request, "entra")
    claims = await _validator(request, tenant, admin.entra.client_id).claims(id_token)
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        return _refused(request, "entra_state")
    actor = entra_admin(admin, claims)  # PermissionDenied (403) without an admin role
    response = redirect("/ui/usage")
    await sessions.open_session(request, response, actor)
    response.del_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


async def _redeem(request: web.Request, admin: AdminConfig, base: str, code: str,
                  verifier: str) -> dict[str, Any] | None:
    """The code and the PKCE verifier exchanged for tokens at the token endpoint."""
    assert admin.entra is not None and admin.entra.client_id
    form = {"grant_type": "authorization_code", "client_id": admin.entra.client_id, "code": code,
            "redirect_uri": _redirect_uri(request, admin), "code_verifier": verifier,
            "scope": SCOPE}
    if admin.entra.client_secret_env:
        secret = os.environ.get(admin.entra.client_secret_env)
        if not secret:
            log.error("console sign-in: %s is not set", admin.entra.client_secret_env)
            return None
        form["client_secret"] = secret
    try:
        async with request.config_dict[HTTP].post(
                f"{base}/token", data=form, timeout=aiohttp.ClientTimeout(total=10)) as r:
            if r.status != 200:
                log.warning("console sign-in: the token endpoint answered %d", r.status)
                return None
            found = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("console sign-in: the token endpoint failed (%s)", type(exc).__name__)
        return None
    return found if isinstance(found, dict) else None


def _validator(request: web.Request, tenant: str, client_id: str) -> EntraValidator:
    auth = request.config_dict[LIVE].runtime.config.auth.entra
    assert auth is not None
    console = state(request)
    key = (tenant, client_id, auth.jwks_url)
    found = console.validators.get(key)
    if found is None:
        http = request.config_dict[HTTP]

        async def fetch(url: str) -> Any:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                r.raise_for_status()
                return await r.json(content_type=None)

        found = console.validators[key] = EntraValidator(EntraConfig(
            tenant_ids=(tenant,), audiences=(client_id,), jwks_url=auth.jwks_url,
            leeway_seconds=auth.leeway_seconds), fetch)
    validator: EntraValidator = found
    return validator

