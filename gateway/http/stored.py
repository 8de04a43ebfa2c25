"""Stored responses (the Responses API): retrieve, delete, list input items and
cancel go to the backend that stored the response, and only for the consumer that
created it; anyone else gets the same 404 as for an id that does not exist. The call
is made by the one upstream exchange, like a model call: caps, metrics, health and the
Entra retry apply.

The upstream stored what the model generated, before the gateway's filters: a
retrieved or cancelled response goes through the deployment's content filters
again, so that it reads as it did when it was created."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from gateway.apis.responses import Responses
from gateway.config import RoutingConfig
from gateway.core.errors import InvalidRequest, ResponseNotFound, UnsupportedOperation
from gateway.core.flow import NO_POLICIES, Flow
from gateway.core.operations import Operation
from gateway.database.access import DATABASE
from gateway.database.values import Owner
from gateway.http import gateway_store
from gateway.http.admission import Handler, admitted
from gateway.http.relay import StreamRelay, relay_json
from gateway.runtime.live import LIVE
from gateway.runtime.snapshot import Runtime
from gateway.upstream.backends import Backend
from gateway.upstream.exchange import Request, exchange
from policies import Caller, Usage

PREFIXES = ("/v1", "/openai/v1", "/openai")
# Query parameters of these routes that reach the upstream; anything else stays here.
_QUERY = ("limit", "order", "after", "before", "include", "include[]", "stream", "starting_after")
# One backend holds a stored response: no failover, and the call is bounded by the
# backend's own timeouts.
_ONE_TRY = RoutingConfig(max_attempts=1)


class StoredResponse(Responses):
    """A stored response read back: its output is filtered, it costs no tokens (its
    usage was counted when it was created), and it has no prompt of its own."""

    name = "responses.stored"
    generates = False

    def prompt_texts(self, body: dict[str, Any]) -> list[Any]:
        return []

    def prompt_parts(self, body: dict[str, Any]) -> list[Any]:
        return []

    def prompt_framing(self, body: dict[str, Any]) -> int:
        return 0

    def usage(self, body: dict[str, Any]) -> Usage | None:
        return None

    def stream_usage(self, event: dict[str, Any], usage: Usage | None) -> Usage | None:
        return None


STORED = StoredResponse()


def not_found(ident: str) -> ResponseNotFound:
    return ResponseNotFound(f"Response with id '{ident}' not found.", param="response_id")


async def owned(request: web.Request, caller: Caller, ident: str) -> Owner:
    """The owner of a stored response the caller may reach; else the 404 of a missing id."""
    database = request.app.get(DATABASE)
    if database is None:
        raise UnsupportedOperation(
            "Stored responses are not kept by this gateway (database.enabled is false).",
            param="response_id")
    if len(ident) > 200:
        raise not_found(ident[:40] + "...")
    owner = await database.responses.owner(ident)
    if owner is None or owner.consumer != caller.consumer or not caller.may_use(owner.deployment):
        raise not_found(ident)
    return owner


def backend_of(runtime: Runtime, owner: Owner) -> Backend | None:
    """The backend that stored it, or (after a config change) another on the same store."""
    deployment = runtime.deployments.get(owner.deployment)
    candidates = [b for d in runtime.deployments.values() for b in d.backends]
    if deployment is not None:
        candidates = [*deployment.backends, *candidates]
    for backend in candidates:
        if backend.name == owner.backend and backend.store_key == owner.store_key:
            return backend
    return next((b for b in candidates
                 if b.store_key == owner.store_key and Operation.RESPONSES in b.urls), None)


class StoredCall:
    """One call on a stored response: `method` on `path` (`/{id}`, `/{id}/input_items`)
    with the query parameters that may cross. A 404 says the response is gone, not that
    the backend is broken."""

    missing_is_answer = True

    def __init__(self, method: str, path: str, query: str) -> None:
        self.method, self.path, self.query = method, path, query

    def prepare(self, flow: Flow, backend: Backend) -> Request:
        url = backend.stored_url(self.path)
        if self.query:
            url += ("&" if "?" in url else "?") + self.query
        return Request(url, None, method=self.method)

    async def deliver(self, request: web.Request, flow: Flow, backend: Backend,
                      answer: aiohttp.ClientResponse, headers: dict[str, str]) -> web.StreamResponse:
        server = request.app[LIVE].config.server
        if flow.stream and answer.status == 200:
            relay = StreamRelay(STORED, flow, flow.chain, False, server.max_event_bytes,
                                server.max_response_bytes)
            return await relay.run(request, answer)
        return await relay_json(answer, STORED, flow, flow.chain, server.max_response_bytes,
                                overrides=headers)


def _handler(method: str, suffix: str, filtered: bool) -> Handler:
    async def serve(request: web.Request, flow: Flow, runtime: Runtime,
                    credentials: list[str]) -> web.StreamResponse:
        ident = request.match_info["response_id"]
        owner = await owned(request, flow.caller, ident)
        gateway = gateway_store.holds(owner)  # stored by the gateway, for a translated backend
        backend = None if gateway else backend_of(runtime, owner)
        if backend is None and not gateway:
            raise not_found(ident)
        stream = request.query.get("stream") == "true"
        if stream and not filtered:
            raise InvalidRequest("stream is only accepted when retrieving a response.", param="stream")
        flow.api, flow.deployment, flow.stream = STORED, owner.deployment, stream
        query = "&".join(f"{k}={v}" for k, v in request.query.items() if k in _QUERY)
        call = StoredCall(method, f"/{ident}{suffix}", query)
        chain = flow.chain = runtime.chain if filtered else NO_POLICIES
        try:
            if chain.looks_at_requests:
                await chain.on_request(flow)
            if backend is None:
                response = await gateway_store.answer(request, flow, STORED, method, suffix, ident)
            else:
                response = await exchange(request, flow, call, [backend], _ONE_TRY, runtime.headers,
                                          credentials)
            if method == "DELETE" and response.status == 200:
                await request.app[DATABASE].responses.forget(ident)
            return response
        finally:
            if chain.looks_at_responses:
                await chain.on_response(flow)

    return admitted(serve)


retrieve = _handler("GET", "", filtered=True)
delete = _handler("DELETE", "", filtered=False)
input_items = _handler("GET", "/input_items", filtered=False)
cancel = _handler("POST", "/cancel", filtered=True)
