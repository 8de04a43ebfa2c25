"""/admin/v1/consumers and their keys. Consumers of the config file are listed too,
read-only; a name cannot be in both. Keys are shown once, when made."""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.admin.auth import admin_actor, gateway_app
from gateway.config.consumers import ConsumerProblem, ConsumerSpec, NewConsumer, check_consumer
from gateway.core.errors import Conflict, InvalidRequest, RouteNotFound
from gateway.core.replies import json_response
from gateway.database.access import DATABASE
from gateway.database.team import Conflict as TakenError
from gateway.database.team import NotFound as MissingError
from gateway.database.team import StoredConsumer
from gateway.http.inbound import read_json
from gateway.runtime.live import LIVE
from gateway.team.sync import refresh
from policies.auth import ConsumerConfig


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(None, max_length=500)
    expires_at: datetime.datetime | None = None


def invalid_request(exc: ValidationError) -> InvalidRequest:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return InvalidRequest(f"Invalid value for '{where}': {err['msg']}." if where else err["msg"],
                          param=where or None)


def _check(app: web.Application, spec: ConsumerSpec) -> None:
    """What the config's own validation says of a consumer, against the running config."""
    config = app[LIVE].runtime.config
    try:
        check_consumer(spec.deployments, spec.limits_by_deployment, spec.quotas_by_deployment,
                       spec.entra is not None, {d.name for d in config.deployments},
                       config.auth.entra is not None)
    except ConsumerProblem as exc:
        raise InvalidRequest(f"The consumer {exc.message}.", param=exc.param) from None


def _view(name: str, spec: dict[str, Any], source: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": source, **spec, **extra}


def stored_view(c: StoredConsumer) -> dict[str, Any]:
    return _view(c.name, c.spec, "database", created_at=c.created_at.isoformat(),
                 updated_at=c.updated_at.isoformat())


def config_view(consumer: ConsumerConfig) -> dict[str, Any]:
    spec = consumer.model_dump(mode="json", exclude={"name", "api_keys"})
    return _view(consumer.name, spec, "config", keys=len(consumer.api_keys), read_only=True)


async def _body(request: web.Request) -> dict[str, Any]:
    return await read_json(request, request.config_dict[LIVE].runtime.config.server)


def _config_names(app: web.Application) -> set[str]:
    return {c.name for c in app[LIVE].runtime.config.consumers}


# The changes, one function each: the admin API's handlers below and the console
# (gateway.console) both make them, with the actor they authenticated.
async def add_consumer(app: web.Application, actor: str, body: Any) -> dict[str, Any]:
    try:
        new = NewConsumer.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    _check(app, new)
    if new.name in _config_names(app):
        raise Conflict(f"Consumer {new.name} is defined in the config file.", param="name")
    spec = new.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)
    try:
        made = await app[DATABASE].team.create_consumer(new.name, spec, actor)
    except TakenError:
        raise Conflict(f"Consumer {new.name} exists.", param="name") from None
    await refresh(app)
    return stored_view(made)


async def change_consumer(app: web.Application, actor: str, name: str,
                          body: Any) -> dict[str, Any]:
    """A PATCH: the fields `body` names replace the stored ones."""
    if name in _config_names(app):
        raise Conflict(f"Consumer {name} is defined in the config file: change it there.")
    team = app[DATABASE].team
    stored = await team.consumer(name)
    if stored is None:
        raise RouteNotFound(f"No consumer {name}.")
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    try:
        spec = ConsumerSpec.model_validate({**stored.spec, **body})
    except ValidationError as exc:
        raise invalid_request(exc) from None
    _check(app, spec)
    updated = await team.update_consumer(name, spec.model_dump(mode="json", exclude_defaults=True),
                                         actor)
    await refresh(app)
    return stored_view(updated)


async def remove_consumer(app: web.Application, actor: str, name: str) -> None:
    if name in _config_names(app):
        raise Conflict(f"Consumer {name} is defined in the config file: remove it there.")
    try:
        await app[DATABASE].team.delete_consumer(name, actor)
    except MissingError:
        raise RouteNotFound(f"No consumer {name}.") from None
    await refresh(app)


async def issue_key(app: web.Application, actor: str, name: str, body: Any) -> dict[str, Any]:
    """A new key: what is kept of it, and the key itself (the only time it is shown)."""
    if name in _config_names(app):
        raise Conflict(f"Consumer {name} is defined in the config file: its keys are there.")
    try:
        new = NewKey.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    expires = new.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=datetime.UTC)
    try:
        stored, key = await app[DATABASE].team.create_key(name, new.description, expires, actor)
    except MissingError:
        raise RouteNotFound(f"No consumer {name}.") from None
    await refresh(app)
    return {**stored.public(), "key": key}


async def revoke_key(app: web.Application, actor: str, name: str, key_id: str) -> None:
    try:
        await app[DATABASE].team.revoke_key(name, key_id, actor)
    except MissingError:
        raise RouteNotFound(f"No key {key_id} of consumer {name}.") from None
    await refresh(app)


async def create(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    return json_response(await add_consumer(gateway_app(request), actor, await _body(request)), 201)


async def listing(request: web.Request) -> web.Response:
    await admin_actor(request)
    stored = (await request.config_dict[DATABASE].team.snapshot()).consumers
    data = [config_view(c) for c in request.config_dict[LIVE].runtime.config.consumers]
    data += [stored_view(c) for c in stored]
    return json_response({"object": "list", "data": data})


async def one(request: web.Request) -> web.Response:
    await admin_actor(request)
    name = request.match_info["name"]
    for consumer in request.config_dict[LIVE].runtime.config.consumers:
        if consumer.name == name:
            return json_response(config_view(consumer))
    stored = await request.config_dict[DATABASE].team.consumer(name)
    if stored is None:
        raise RouteNotFound(f"No consumer {name}.")
    return json_response(stored_view(stored))


async def patch(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    name = request.match_info["name"]
    if name in _config_names(gateway_app(request)):  # before the body: the answer does not depend on it
        raise Conflict(f"Consumer {name} is defined in the config file: change it there.")
    return json_response(await change_consumer(gateway_app(request), actor, name, await _body(request)))


async def remove(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    name = request.match_info["name"]
    await remove_consumer(gateway_app(request), actor, name)
    return json_response({"name": name, "deleted": True})


async def create_key(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    name = request.match_info["name"]
    if name in _config_names(gateway_app(request)):
        raise Conflict(f"Consumer {name} is defined in the config file: its keys are there.")
    body = await _body(request) if request.can_read_body else {}
    # The only time the key itself is ever shown.
    return json_response(await issue_key(gateway_app(request), actor, name, body), 201)


async def keys(request: web.Request) -> web.Response:
    await admin_actor(request)
    listed = await request.config_dict[DATABASE].team.keys(request.match_info["name"])
    return json_response({"object": "list", "data": [k.public() for k in listed]})


async def revoke(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    name, key_id = request.match_info["name"], request.match_info["key_id"]
    await revoke_key(gateway_app(request), actor, name, key_id)
    return json_response({"id": key_id, "revoked": True})


async def audit(request: web.Request) -> web.Response:
    await admin_actor(request)
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "100"))))
        before = int(request.query["before"]) if "before" in request.query else None
    except ValueError:
        raise InvalidRequest("limit and before are whole numbers.", param="limit") from None
    rows = await request.config_dict[DATABASE].team.audit(limit, before)
    return json_response({"object": "list", "data": rows})
