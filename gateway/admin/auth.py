"""Who may use the admin API: a key whose digest is in `admin.api_keys`, or an Entra
token (checked as `auth.entra` says) carrying one of `admin.entra.roles`. A consumer's
credential is never an admin's (the config refuses a digest in both). The actor an
action is recorded under is the admin key's configured name or the token's oid, never
a secret."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.config import AdminConfig
from gateway.core.errors import RouteNotFound
from gateway.runtime.live import LIVE
from policies import PermissionDenied, Unauthenticated
from policies.auth import hash_key, presented_credentials
from policies.auth.entra import looks_like_jwt


def admin_listener(request: web.Request) -> AdminConfig:
    """The admin config, if this request reached a listener that serves the admin API
    (and the console); else RouteNotFound, as for any route that is not there."""
    admin = request.config_dict[LIVE].runtime.config.admin
    if not admin.api_keys and admin.entra is None:
        raise RouteNotFound("The admin API is not enabled here: configure admin.api_keys or "
                            "admin.entra.")
    if admin.port and _local_port(request) != admin.port:
        raise RouteNotFound(f"The admin API is served on port {admin.port} only.")
    return admin


def admin_key_name(admin: AdminConfig, credential: str) -> str | None:
    """The configured name of the admin key `credential`, if it is one."""
    if not (credential.isascii() and credential.isprintable()):
        return None
    digest = hash_key(credential)
    return next((name for name, known in admin.api_keys.items() if known == digest), None)


async def admin_actor(request: web.Request) -> str:
    admin = admin_listener(request)
    runtime = request.config_dict[LIVE].runtime
    credentials = presented_credentials(request.headers)
    if not credentials:
        raise Unauthenticated("Access denied: the admin API needs an admin key or an Entra token.")
    if not all(c.isascii() and c.isprintable() for c in credentials):
        raise Unauthenticated("Access denied: not an admin credential.")
    for credential in credentials:
        name = admin_key_name(admin, credential)
        if name is not None:
            return f"key:{name}"
    token = next((c for c in credentials if looks_like_jwt(c)), None)
    if admin.entra is not None and runtime.entra is not None and token is not None:
        return entra_admin(admin, await runtime.entra.claims(token))
    raise Unauthenticated("Access denied: not an admin credential.")


def entra_admin(admin: AdminConfig, claims: Mapping[str, Any]) -> str:
    """The actor of verified Entra claims carrying one of `admin.entra.roles`; else
    PermissionDenied (the API's bearer tokens and the console's sign-in alike)."""
    roles = claims.get("roles")
    wanted = admin.entra.roles if admin.entra is not None else ()
    granted = set(roles) & set(wanted) if isinstance(roles, list) else set()
    oid = claims.get("oid") or claims.get("appid") or claims.get("azp") or "unknown"
    if not granted:
        raise PermissionDenied(f"The token of {oid} carries no admin role ({', '.join(wanted)}).")
    return f"entra:{oid}"


def _local_port(request: web.Request) -> int | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else None


def gateway_app(request: web.Request) -> web.Application:
    """The gateway's own app, of which the admin API and the console are sub-applications:
    what a change made there (a reload, a team refresh) acts on. In a sub-app
    `request.app` is the sub-app; the first of the matched apps is the root."""
    return request.match_info.apps[0]
