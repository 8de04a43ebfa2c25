"""Who may use the admin API: a key whose digest is in `admin.api_keys`, or an Entra
token (checked as `auth.entra` says) carrying one of `admin.entra.roles`. A consumer's
credential is never an admin's (the config refuses a digest in both). The actor an
action is recorded under is the admin key's configured name or the token's oid, never
a secret."""

from __future__ import annotations

from aiohttp import web

from gateway.core.errors import RouteNotFound
from gateway.runtime.live import LIVE
from policies import PermissionDenied, Unauthenticated
from policies.auth import hash_key, presented_credentials
from policies.auth.entra import looks_like_jwt


async def admin_actor(request: web.Request) -> str:
    runtime = request.config_dict[LIVE].runtime
    admin = runtime.config.admin
    if not admin.api_keys and admin.entra is None:
        raise RouteNotFound("The admin API is not enabled here: configure admin.api_keys or "
                            "admin.entra.")
    if admin.port and _local_port(request) != admin.port:
        raise RouteNotFound(f"The admin API is served on port {admin.port} only.")
    credentials = presented_credentials(request.headers)
    if not credentials:
        raise Unauthenticated("Access denied: the admin API needs an admin key or an Entra token.")
    if not all(c.isascii() and c.isprintable() for c in credentials):
        raise Unauthenticated("Access denied: not an admin credential.")
    names = {digest: name for name, digest in admin.api_keys.items()}
    for credential in credentials:
        name = names.get(hash_key(credential))
        if name is not None:
            return f"key:{name}"
    token = next((c for c in credentials if looks_like_jwt(c)), None)
    if admin.entra is not None and runtime.entra is not None and token is not None:
        claims = await runtime.entra.claims(token)
        roles = claims.get("roles")
        granted = set(roles) & set(admin.entra.roles) if isinstance(roles, list) else set()
        oid = claims.get("oid") or claims.get("appid") or claims.get("azp") or "unknown"
        if not granted:
            raise PermissionDenied(f"The token of {oid} carries no admin role "
                                   f"({', '.join(admin.entra.roles)}).")
        return f"entra:{oid}"
    raise Unauthenticated("Access denied: not an admin credential.")


def _local_port(request: web.Request) -> int | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else None


def gateway_app(request: web.Request) -> web.Application:
    """The gateway's own app, of which the admin API is a sub-application: what a change
    made here (a reload, a team refresh) acts on."""
    return request.match_info.apps[0]
