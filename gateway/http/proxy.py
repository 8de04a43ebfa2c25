"""The handler of every model route: read the body, resolve the alias, run the policies,
choose the backends that may serve it, and hand them to the one upstream exchange
(`gateway.upstream.exchange`), with the relay as what is done with the answer.
What depends on the API is asked of the route's adapter (`gateway.apis`)."""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from gateway.apis import Api, ModelRoute
from gateway.core.errors import InvalidRequest, ResponseNotFound, UnsupportedOperation
from gateway.core.flow import Flow
from gateway.core.operations import Operation
from gateway.core.tokens import TOKENIZER
from gateway.database.access import DATABASE
from gateway.database.errors import unavailable
from gateway.database.values import Owner
from gateway.enforcement.accounting import finish
from gateway.enforcement.limiter import LIMITER
from gateway.http import count_tokens, gateway_store
from gateway.http.admission import Handler, admitted
from gateway.http.inbound import parse, read_json
from gateway.http.relay import Remember, StreamRelay, relay_json
from gateway.ops.metrics import METRICS
from gateway.runtime.live import LIVE
from gateway.runtime.snapshot import Runtime
from gateway.translate import Target, plan, way
from gateway.upstream.backends import Backend
from gateway.upstream.exchange import Request, exchange
from gateway.upstream.routing import Deployment

log = logging.getLogger("gateway.proxy")


class ModelCall:
    """An upstream call for a model route: the client's body for the chosen backend (in
    the backend's API, translated when it speaks another), and its answer relayed in the
    client's API."""

    missing_is_answer = False

    def __init__(self, api: Api) -> None:
        self.api = api

    def prepare(self, flow: Flow, backend: Backend) -> Request:
        way = plan(self.api.operation, backend.urls)
        assert way is not None  # _backends kept only the backends that serve it
        operation, translator = way
        flow.backend_api = operation  # a str: the enum is a StrEnum
        model = backend.body_model(operation)
        if translator is None:
            flow.body["model"] = model
            flow.translation = None
            return Request(backend.urls[operation], orjson.dumps(flow.body), model)
        target = self.target(flow, backend, model)
        body = translator.request(flow.body, target)
        body["model"] = model
        flow.translation = (translator, target)
        return Request(backend.urls[operation], orjson.dumps(body), model)

    def target(self, flow: Flow, backend: Backend, model: str) -> Target:
        deployment = flow.deployment
        return Target(deployment, model, flow.default_max_tokens, flow.request_id,
                      created=int(time.time()))

    async def deliver(self, request: web.Request, flow: Flow, backend: Backend,
                      answer: aiohttp.ClientResponse, headers: dict[str, str]) -> web.StreamResponse:
        server = request.app[LIVE].config.server  # server settings change only at a restart
        remember = _rememberer(request, self.api, flow, backend)
        translation = flow.translation
        if translation is not None and flow.stream and translation[0].counts_prompt:
            # What count_tokens answers for the same prompt on this backend, so that a
            # client comparing the two (Claude Code) sees one number.
            count = await count_tokens.prompt_tokens(request.app, flow.body, backend.model)
            translation[1].count_prompt = lambda: count
        if flow.stream and answer.status == 200:
            # A stream, whatever the upstream's Content-Type says: some Azure-compatible
            # servers send none.
            reshape = None if translation is None else translation[0].stream(flow.body, translation[1])
            relay = StreamRelay(self.api, flow, flow.chain, flow.strip_usage,
                                server.max_event_bytes, server.max_response_bytes, remember,
                                reshape)
            return await relay.run(request, answer)
        response = await relay_json(answer, self.api, flow, flow.chain, server.max_response_bytes,
                                    remember, headers, translation)
        if flow.usage is None and flow.answer_texts:
            # The gateway must count this answer (the upstream reported no usage): it goes
            # out first, so that the client's first byte never waits for the tokenizer.
            await response.prepare(request)
            await response.write_eof()
        return response


def model_handler(route: ModelRoute) -> Handler:
    api = route.api
    from_path = "{deployment}" in route.path
    call = ModelCall(api)

    async def serve(request: web.Request, flow: Flow, runtime: Runtime,
                    credentials: list[str]) -> web.StreamResponse:
        app = request.app
        body = await read_json(request, runtime.config.server)
        path_name = request.match_info["deployment"] if from_path else None
        inbound = parse(api, body, request.headers, path_name, route.model_from_headers)
        deployment = runtime.resolve(inbound.alias, flow.caller)
        flow.api, flow.api_name, flow.operation = api, api.name, api.gen_ai_operation
        flow.deployment, flow.alias = deployment.name, inbound.alias
        flow.body, flow.stream = inbound.body, inbound.stream
        flow.default_max_tokens = deployment.config.default_max_tokens
        flow.routed_to = deployment
        chain = flow.chain = runtime.chain
        gauge = app[METRICS].inflight
        labels = (deployment.name,)
        gauge.inc(labels)
        try:
            if chain.looks_at_requests:
                await chain.on_request(flow)
            flow.strip_usage = flow.stream and api.ask_stream_usage(flow.body)
            tries = _backends(deployment, api, await _continued_store(request, api, deployment, flow))
            if not tries:  # a token count no backend makes: the gateway's own
                return await count_tokens.answer(request, flow, deployment)
            return await exchange(request, flow, call, tries, deployment.config.routing,
                                  runtime.headers, credentials)
        except BaseException:
            flow.disconnected = request.transport is None or request.transport.is_closing()
            raise
        finally:
            gauge.inc(labels, -1)
            await finish(app[TOKENIZER], app[LIMITER].settlements, api, flow, chain,
                         deployment.price(flow.backend), deployment.encoding)

    return admitted(serve)


def _backends(deployment: Deployment, api: Api, store: str | None) -> list[Backend]:
    """The backends to try, in order: those that serve the API (and hold the store a
    continued response lives in); the error when there are none."""
    now = time.monotonic()
    tries = [b for b in deployment.candidates(now)
             if way(api.operation, b.urls) is not None and (store is None or b.store_key == store or (
                 store == gateway_store.STORE_KEY and gateway_store.translated(b)))]
    if tries:
        return tries
    if not any(way(api.operation, b.urls) is not None for b in deployment.backends):
        if api.operation is Operation.COUNT_TOKENS:
            return []  # no Anthropic backend: the gateway counts (http/count_tokens)
        providers = ", ".join(sorted({b.provider.name for b in deployment.backends}))
        raise UnsupportedOperation(
            f"No backend of deployment {deployment.name} serves {api.name} "
            f"(its backends speak {providers}).")
    raise deployment.nothing_available(now)


async def _continued_store(request: web.Request, api: Api, deployment: Deployment,
                           flow: Flow) -> str | None:
    """A request that continues a stored response (previous_response_id) can only go to
    the upstream store that holds it; None when it continues nothing."""
    previous = api.previous_response(flow.body)
    if api.operation is Operation.RESPONSES and flow.body.get("conversation") is not None:
        # An upstream conversation is kept under the organisation's credential, and the
        # gateway serves no Conversations API that could record whose one it is: letting
        # an id through would let any consumer read any conversation it learns the id of.
        raise UnsupportedOperation(
            "conversation is not served by this gateway (it cannot check whose a "
            "conversation is): send the conversation in `input`, or continue a response "
            "with previous_response_id.", param="conversation")
    database = request.app.get(DATABASE)
    if database is None:  # Responses and its compaction: what would need an owner is refused
        _refuse_without_database(flow.body, previous, api.operation is Operation.RESPONSES)
    if previous is None or database is None:
        return None
    owner = await database.responses.owner(previous)
    if owner is None or owner.consumer != flow.caller.consumer:
        raise ResponseNotFound(f"Previous response with id '{previous}' not found.",
                               param="previous_response_id")
    if gateway_store.holds(owner):  # the gateway stored it: a translated backend continues it
        return await gateway_store.continue_from(request, deployment, flow, previous)
    if not any(b.store_key == owner.store_key for b in deployment.backends):
        raise InvalidRequest(
            f"Previous response '{previous}' is stored by an upstream that deployment "
            f"{deployment.name} does not use; continue it with the model that created it.",
            param="previous_response_id")
    return owner.store_key


def _refuse_without_database(body: dict[str, Any], previous: str | None, responses: bool) -> None:
    """Without a database the gateway cannot record who made a stored response, so it
    cannot let anyone follow one up: what would need that is refused, never let through
    unchecked. A response the upstream stores anyway (`store` not false) is created as
    asked; it just cannot be reached through this gateway."""
    if previous is not None:
        raise UnsupportedOperation(
            "previous_response_id needs stored responses, and this gateway keeps none "
            "(database.enabled is false): send the conversation in `input` instead.",
            param="previous_response_id")
    if responses and body.get("background") is True:
        raise UnsupportedOperation(
            "background responses are read back from the gateway's stored responses, and "
            "this gateway keeps none (database.enabled is false).", param="background")


def _rememberer(request: web.Request, api: Api, flow: Flow, backend: Backend) -> Remember | None:
    """What records the owner of a response the upstream will store (or the gateway, for
    a translated backend)."""
    if flow.translation is not None:
        return gateway_store.remember_translated(request, api, flow)
    database = request.app.get(DATABASE)
    if database is None or not api.stores(flow.body):
        return None
    owners = database.responses
    owner = Owner(flow.caller.consumer, flow.deployment, backend.name, backend.store_key)

    async def remember(ident: str) -> None:
        try:
            await owners.remember(ident, owner)
        except unavailable() as exc:
            # The answer was generated (and paid for): it still goes out, but following
            # it up through the gateway will not work.
            log.error("owner of stored response %s not recorded: %s", ident, type(exc).__name__)

    return remember
