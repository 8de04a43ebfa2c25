"""The admin API (/admin/v1): consumers and keys at runtime, the audit trail, usage,
and the live state of deployments and config. JSON in the contract's error shape,
its own credential (`admin.auth`)."""

from __future__ import annotations

from aiohttp import web

from gateway.admin import consumers, state, usage

PREFIX = "/admin/v1"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post(PREFIX + "/consumers", consumers.create)
    router.add_get(PREFIX + "/consumers", consumers.listing)
    router.add_get(PREFIX + "/consumers/{name}", consumers.one)
    router.add_patch(PREFIX + "/consumers/{name}", consumers.patch)
    router.add_delete(PREFIX + "/consumers/{name}", consumers.remove)
    router.add_post(PREFIX + "/consumers/{name}/keys", consumers.create_key)
    router.add_get(PREFIX + "/consumers/{name}/keys", consumers.keys)
    router.add_delete(PREFIX + "/consumers/{name}/keys/{key_id}", consumers.revoke)
    router.add_get(PREFIX + "/consumers/{name}/usage", usage.consumer_usage)
    router.add_get(PREFIX + "/audit", consumers.audit)
    router.add_get(PREFIX + "/usage", usage.report)
    router.add_get("/v1/usage", usage.own_usage)
    router.add_get(PREFIX + "/deployments", state.deployments)
    router.add_get(PREFIX + "/config", state.config)
    router.add_post(PREFIX + "/reload", state.reload_now)
