"""The inbound API as an OpenAPI 3.1 document, served at `/openapi.json`: built from
the route table and each adapter's own body model (a multipart form for uploads), so that it says what the
handlers accept. Clients and fuzzers (the reliability suite runs schemathesis on
it) read it; nothing in the gateway depends on it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.apis import MEDIA_ROUTES, MODEL_ROUTES, MediaApi
from gateway.core.flavours import Flavour
from gateway.core.replies import json_response
from gateway.http.catalog import MODEL_INFO, MODEL_LISTS
from gateway.http.stored import PREFIXES as STORED_PREFIXES

_ERROR = {"$ref": "#/components/schemas/Error"}
_ANSWER = {"type": "object"}


def _responses(flavour: Flavour | None = None) -> dict[str, Any]:
    error = {"description": "An error in the route's shape",
             "content": {"application/json": {"schema": _ERROR if flavour is not Flavour.ANTHROPIC
                                                      else {"$ref": "#/components/schemas/AnthropicError"}}}}
    return {"200": {"description": "The answer (JSON, or an event stream when asked for)",
                    "content": {"application/json": {"schema": _ANSWER},
                                "text/event-stream": {"schema": {"type": "string"}}}},
            "4XX": error, "5XX": error}


def _params(path: str, flavour: Flavour) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    if "{deployment}" in path:
        params.append({"name": "deployment", "in": "path", "required": True,
                       "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"}})
    if flavour in (Flavour.AZURE_OPENAI, Flavour.AZURE_INFERENCE):
        params.append({"name": "api-version", "in": "query", "required": False,
                       "schema": {"type": "string"}})
    return params


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": ["string", "null"]}, "message": {"type": "string"},
                           "type": {"type": ["string", "null"]}, "param": {"type": ["string", "null"]}}}}},
        "AnthropicError": {"type": "object", "required": ["type", "error"], "properties": {
            "type": {"const": "error"}, "error": {"type": "object", "required": ["type", "message"]}}},
    }
    for route in MODEL_ROUTES:
        name = route.api.Body.__name__
        schema = route.api.Body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        paths[route.path] = {"post": {
            "operationId": f"{route.api.name}:{route.path}",
            "summary": f"{route.api.name} ({route.flavour.value})",
            "parameters": _params(route.path, route.flavour),
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{name}"}}}},
            "responses": _responses(route.flavour),
        }}
    for route in MEDIA_ROUTES:
        api = route.api
        assert isinstance(api, MediaApi)
        name = api.Body.__name__
        schema = api.Body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        content: dict[str, Any] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        if api.form:
            form = {**schema, "properties": {**schema.get("properties", {}), **{
                part: {"type": "string", "format": "binary"} for part in api.files}}}
            content = {"multipart/form-data": {"schema": form},
                       **(content if api.operation == "images/edits" else {})}
        answers = _responses(route.flavour)
        answers["200"]["content"] |= {"text/plain": {"schema": {"type": "string"}},
                                      "audio/*": {"schema": {"type": "string", "format": "binary"}}}
        paths[route.path] = {"post": {
            "operationId": f"{api.name}:{route.path}",
            "summary": f"{api.name} ({route.flavour.value})",
            "parameters": _params(route.path, route.flavour),
            "requestBody": {"required": True, "content": content},
            "responses": answers,
        }}
    for path in MODEL_LISTS:
        paths[path] = {"get": {"operationId": f"models:{path}", "responses": _responses()}}
        paths[path + "/{model}"] = {"get": {
            "operationId": f"model:{path}", "responses": _responses(),
            "parameters": [{"name": "model", "in": "path", "required": True,
                            "schema": {"type": "string"}}]}}
    paths[MODEL_INFO] = {"get": {"operationId": "model-info", "responses": _responses(),
                                 "parameters": [{"name": "model", "in": "query",
                                                 "schema": {"type": "string"}}]}}
    ident = [{"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    for prefix in STORED_PREFIXES:
        base = prefix + "/responses/{response_id}"
        paths[base] = {"get": {"operationId": f"retrieve:{prefix}", "parameters": ident,
                               "responses": _responses()},
                       "delete": {"operationId": f"delete:{prefix}", "parameters": ident,
                                  "responses": _responses()}}
        paths[base + "/input_items"] = {"get": {"operationId": f"input-items:{prefix}",
                                                "parameters": ident, "responses": _responses()}}
        paths[base + "/cancel"] = {"post": {"operationId": f"cancel:{prefix}", "parameters": ident,
                                            "responses": _responses()}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Model Gateway", "version": "1",
                 "description": "One endpoint for an organisation's model deployments; see "
                                "docs/contract.md."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"},
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"apiKey": []}, {"bearer": []}],
    }


async def handle(request: web.Request) -> web.Response:
    return json_response(document())
