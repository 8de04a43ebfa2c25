"""Stored responses (the Responses API): retrieve, delete, list input items and
cancel go to the backend that stored the response, and only for the consumer that
created it; anyone else gets the same 404 as for an id that does not exist.

The upstream stored what the model generated, before the gateway's filters: a
retrieved or cancelled response goes through the deployment's content filters
again, so that it reads as it did when it was created."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.apis.responses import Responses
from gateway.core.errors import InvalidRequest, ResponseNotFound
from gateway.core.flow import CONTEXT, EXCHANGE, Exchange
from gateway.database.engine import DATABASE
from gateway.database.responses import Owner
from gateway.http.relay import StreamRelay, relay_json
from gateway.runtime.live import LIVE
from gateway.runtime.snapshot import Runtime
from gateway.upstream import client as upstream
from gateway.upstream.backends import Backend
from gateway.upstream.client import SESSION
from policies import Caller, PolicyChain, RequestContext, Usage

PREFIXES = ("/v1", "/openai/v1", "/openai")
# Query parameters of these routes that reach the upstream; anything else stays here.
_QUERY = ("limit", "order", "after", "before", "include", "include[]", "stream", "starting_after")


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


async def owned(request: web.Request, runtime: Runtime, caller: Caller, ident: str) -> Owner:
    """The owner of a stored response the caller may reach; else the 404 of a missing id."""
    if len(ident) > 200:
        raise not_found(ident[:40] + "...")
    owner = await request.app[DATABASE].responses.owner(ident)
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
    return next((b for b in candidates if b.store_key == owner.store_key and "responses" in b.urls),
                None)


def _handler(method: str, suffix: str, filtered: bool) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        runtime = request.app[LIVE].runtime
        ex: Exchange = request[EXCHANGE]
        caller = await runtime.authenticator.authenticate(request.headers)
        ex.consumer = caller.consumer
        ident = request.match_info["response_id"]
        owner = await owned(request, runtime, caller, ident)
        backend = backend_of(runtime, owner)
        if backend is None:
            raise not_found(ident)
        ex.deployment, ex.backend = owner.deployment, backend.name
        query = "&".join(f"{k}={v}" for k, v in request.query.items() if k in _QUERY)
        url = backend.stored_url(f"/{ident}{suffix}")
        if query:
            url += ("&" if "?" in url else "?") + query
        stream = request.query.get("stream") == "true"
        if stream and not filtered:
            raise InvalidRequest("stream is only accepted when retrieving a response.", param="stream")
        ctx = RequestContext(ex.request_id, STORED, owner.deployment, caller, {}, stream)
        request[CONTEXT] = ctx
        chain = runtime.chain if filtered else NO_POLICIES
        ex.stream = stream
        try:
            if chain.looks_at_requests:
                await chain.on_request(ctx)
            headers = upstream.forward_headers(request.headers, await backend.auth_headers(),
                                               backend.defaults, runtime.headers)
            server = runtime.config.server
            async with upstream.call(request.app[SESSION], backend, url, headers, None,
                                     method) as answer:
                if stream and answer.status == 200:
                    relay = StreamRelay(STORED, ctx, ex, chain, False, server.max_event_bytes,
                                        server.max_response_bytes)
                    return await relay.run(request, answer)
                response = await relay_json(answer, STORED, ctx, ex, chain, server.max_response_bytes)
            if method == "DELETE" and response.status == 200:
                await request.app[DATABASE].responses.forget(ident)
            return response
        finally:
            if chain.looks_at_responses:
                await chain.on_response(ctx)

    return handle


# For answers that hold no generated text (delete, input items).
NO_POLICIES = PolicyChain()


def add_routes(router: web.UrlDispatcher) -> None:
    for prefix in PREFIXES:
        base = prefix + "/responses/{response_id}"
        router.add_get(base, _handler("GET", "", filtered=True))
        router.add_delete(base, _handler("DELETE", "", filtered=False))
        router.add_get(base + "/input_items", _handler("GET", "/input_items", filtered=False))
        router.add_post(base + "/cancel", _handler("POST", "/cancel", filtered=True))
