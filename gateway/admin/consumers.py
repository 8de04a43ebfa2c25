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
from gateway.database.engine import DATABASE
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


def _invalid(exc: ValidationError) -> InvalidRequest:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return InvalidRequest(f"Invalid value for '{where}': {err['msg']}." if where else err["msg"],
                          param=where or None)


def _check(request: web.Request, spec: ConsumerSpec) -> None:
    """What the config's own validation says of a consumer, against the running config."""
    config = request.config_dict[LIVE].runtime.config
    try:
        check_consumer(spec.deployments, spec.limits_by_deployment, spec.quotas_by_deployment,
                       spec.entra is not None, {d.name for d in config.deployments},
                       config.auth.entra is not None)
    except ConsumerProblem as exc:
        raise InvalidRequest(f"The consumer {exc.message}.", param=exc.param) from None


def _view(name: str, spec: dict[str, Any], source: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": source, **spec, **extra}


def _stored_view(c: StoredConsumer) -> dict[str, Any]:
    return _view(c.name, c.spec, "database", created_at=c.created_at.isoformat(),
                 updated_at=c.updated_at.isoformat())


def _config_view(consumer: ConsumerConfig) -> dict[str, Any]:
    spec = consumer.model_dump(mode="json", exclude={"name", "api_keys"})
    return _view(consumer.name, spec, "config", keys=len(consumer.api_keys), read_only=True)


async def _body(request: web.Request) -> dict[str, Any]:
    return await read_json(request, request.config_dict[LIVE].runtime.config.server)


def _config_names(request: web.Request) -> set[str]:
    return {c.name for c in request.config_dict[LIVE].runtime.config.consumers}


async def create(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    try:
        new = NewConsumer.model_validate(await _body(request))
    except ValidationError as exc:
        raise _invalid(exc) from None
    _check(request, new)
    if new.name in _config_names(request):
        raise Conflict(f"Consumer {new.name} is defined in the config file.", param="name")
    spec = new.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)
    try:
        made = await request.config_dict[DATABASE].team.create_consumer(new.name, spec, actor)
    except TakenError:
        raise Conflict(f"Consumer {new.name} exists.", param="name") from None
    await refresh(gateway_app(request))
    return json_response(_stored_view(made), 201)


async def listing(request: web.Request) -> web.Response:
    await admin_actor(request)
    stored = (await request.config_dict[DATABASE].team.snapshot()).consumers
    data = [_config_view(c) for c in request.config_dict[LIVE].runtime.config.consumers]
    data += [_stored_view(c) for c in stored]
    return json_response({"object": "list", "data": data})


async def one(request: web.Request) -> web.Response:
    await admin_actor(request)
    name = request.match_info["name"]
    for consumer in request.config_dict[LIVE].runtime.config.consumers:
        if consumer.name == name:
            return json_response(_config_view(consumer))
    stored = await request.config_dict[DATABASE].team.consumer(name)
    if stored is None:
        raise RouteNotFound(f"No consumer {name}.")
    return json_response(_stored_view(stored))


async def patch(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    name = request.match_info["name"]
    if name in _config_names(request):
        raise Conflict(f"Consumer {name} is defined in the config file: change it there.")
    team = request.config_dict[DATABASE].team
    stored = await team.consumer(name)
    if stored is None:
        raise RouteNotFound(f"No consumer {name}.")
    try:
        spec = ConsumerSpec.model_validate({**stored.spec, **await _body(request)})
    except ValidationError as exc:
        raise _invalid(exc) from None
    _check(request, spec)
    updated = await team.update_consumer(name, spec.model_dump(mode="json", exclude_defaults=True),
                                         actor)
    await refresh(gateway_app(request))
    return json_response(_stored_view(updated))


async def remove(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    name = request.match_info["name"]
    if name in _config_names(request):
        raise Conflict(f"Consumer {name} is defined in the config file: remove it there.")
    try:
        await request.config_dict[DATABASE].team.delete_consumer(name, actor)
    except MissingError:
        raise RouteNotFound(f"No consumer {name}.") from None
    await refresh(gateway_app(request))
    return json_response({"name": name, "deleted": True})


async def create_key(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    name = request.match_info["name"]
    if name in _config_names(request):
        raise Conflict(f"Consumer {name} is defined in the config file: its keys are there.")
    try:
        new = NewKey.model_validate(await _body(request) if request.can_read_body else {})
    except ValidationError as exc:
        raise _invalid(exc) from None
    expires = new.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=datetime.UTC)
    try:
        stored, key = await request.config_dict[DATABASE].team.create_key(name, new.description, expires,
                                                                   actor)
    except MissingError:
        raise RouteNotFound(f"No consumer {name}.") from None
    await refresh(gateway_app(request))
    # The only time the key itself is ever shown.
    return json_response({**stored.public(), "key": key}, 201)


async def keys(request: web.Request) -> web.Response:
    await admin_actor(request)
    listed = await request.config_dict[DATABASE].team.keys(request.match_info["name"])
    return json_response({"object": "list", "data": [k.public() for k in listed]})


async def revoke(request: web.Request) -> web.Response:
    actor = await admin_actor(request)
    name, key_id = request.match_info["name"], request.match_info["key_id"]
    try:
        await request.config_dict[DATABASE].team.revoke_key(name, key_id, actor)
    except MissingError:
        raise RouteNotFound(f"No key {key_id} of consumer {name}.") from None
    await refresh(gateway_app(request))
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
