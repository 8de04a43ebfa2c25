"""Stored responses for a Responses client on a translated backend, which stores
nothing: the gateway stores them itself (`gateway.database.gateway_responses`), bound
to the consumer like an upstream's (the owner row, under the store key `gateway`), so
that follow-ups, retrieval, deletion and input items work as on a native backend,
through any replica and after restarts. Three moments:

    continued   `proxy._continued_store`: a previous_response_id the gateway stored; the
                stored conversation (each earlier response's input and output, oldest
                first) goes before the request's input, and only translated backends
                may take it
    remembered  `proxy._rememberer`: the answer of a translated request is bound to the
                request it answers (`translate.bound`) and, when it is stored, recorded:
                owner and row before the client gets the id (the row complete for a
                whole answer, in progress for a stream, which is completed when its
                terminal event has been made: a follow-up waits for that)
    served      `stored`: retrieve (also `?stream=true`, replayed), delete, input_items;
                cancel answers as for a response that is not a background one

A record is written before the id reaches the client, except a stream's completion,
which the relay gives no way to await: a follow-up that finds its previous response in
progress waits for it (up to WAIT_SECONDS)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.apis import Api
from gateway.core.errors import InvalidRequest, ResponseNotFound
from gateway.core.flow import Flow
from gateway.core.operations import Operation
from gateway.core.replies import json_response
from gateway.database.access import DATABASE
from gateway.database.errors import unavailable
from gateway.database.values import Owner
from gateway.http.relay import Remember, StreamRelay, relay_json
from gateway.runtime.live import LIVE
from gateway.translate import way
from gateway.translate.base import Event, StreamTranslator, Target, Translator
from gateway.upstream.backends import Backend
from gateway.upstream.routing import Deployment

if TYPE_CHECKING:
    from gateway.database.gateway_responses import GatewayResponses, Record

log = logging.getLogger("gateway.http.gateway_store")

STORE_KEY = "gateway"  # the owner's store key (and backend) of what the gateway stores
WAIT_SECONDS = 10.0
_TERMINAL = (b"response.completed", b"response.incomplete", b"response.failed")
# What a request continues (its own input, before the stored conversation was put in
# front), for the rememberer of the same request.
_OWN_INPUT: weakref.WeakKeyDictionary[Flow, list[dict[str, Any]]] = weakref.WeakKeyDictionary()
# Completions being written by this process, by response id: a follow-up here awaits it.
_WRITING: dict[str, asyncio.Task[None]] = {}


def holds(owner: Owner) -> bool:
    return owner.store_key == STORE_KEY


def translated(backend: Backend) -> bool:
    """A backend whose Responses answers the gateway stores (it has no Responses API)."""
    return Operation.RESPONSES not in backend.urls


def items(given: Any) -> list[dict[str, Any]]:
    """Input items as the API lists them: a string is a user message, a message's string
    content a text part; every item has an id."""
    found = [{"role": "user", "content": given}] if isinstance(given, str) else [
        i for i in given if isinstance(i, dict)] if isinstance(given, list) else []
    out = []
    for n, item in enumerate(found):
        item = dict(item)
        if item.get("role") is not None and item.get("type") in (None, "message"):
            item["type"] = "message"
            if isinstance(item.get("content"), str):
                kind = "output_text" if item["role"] == "assistant" else "input_text"
                item["content"] = [{"type": kind, "text": item["content"]}]
        if not item.get("id"):
            prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco",
                      "reasoning": "rs"}.get(str(item.get("type")), "item")
            item["id"] = f"{prefix}_gw_{os.urandom(12).hex()}{n:02x}"
        out.append(item)
    return out


# --- continued ---------------------------------------------------------------------------
async def continue_from(request: web.Request, deployment: Deployment, flow: Flow,
                        previous: str) -> str:
    """Put the stored conversation before the request's input; the store key that keeps
    the request on translated backends."""
    if not any(translated(b) and way(flow.api.operation, b.urls) is not None
               for b in deployment.backends):
        raise InvalidRequest(
            f"Previous response '{previous}' was stored by the gateway for a translated "
            f"deployment; deployment {deployment.name} has only backends that store their own "
            "responses. Continue it on a deployment without a Responses backend.",
            param="previous_response_id")
    chain = await _chain(request.app[DATABASE].gateway_responses, previous)
    history = [item for record in chain
               for item in (*record.items, *(record.response.get("output") or []))]
    own = items(flow.body.get("input"))
    _OWN_INPUT[flow] = own
    flow.body["input"] = [*history, *own]
    return STORE_KEY


async def _chain(store: GatewayResponses, previous: str) -> list[Record]:
    writing = _WRITING.get(previous)
    if writing is not None:
        await asyncio.wait([writing], timeout=WAIT_SECONDS)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        chain = await store.chain(previous)
        if chain is None:
            raise InvalidRequest(f"A response that previous response '{previous}' continues was "
                                 "deleted: the conversation cannot be continued.",
                                 param="previous_response_id")
        if not chain:
            raise ResponseNotFound(f"Previous response with id '{previous}' not found.",
                                   param="previous_response_id")
        if chain[-1].status != "in_progress":
            return chain
        if time.monotonic() >= deadline:
            raise InvalidRequest(f"Previous response '{previous}' has not completed.",
                                 param="previous_response_id")
        await asyncio.sleep(0.05)  # its stream's completion is being written by another replica


# --- remembered --------------------------------------------------------------------------
def remember_translated(request: web.Request, api: Api, flow: Flow) -> Remember | None:
    """Bind the translator to its request; when the answer is to be stored, what records
    it (and the translator that shows it the answer)."""
    assert flow.translation is not None
    translator, target = flow.translation
    from gateway.translate.bound import bind  # with the first translated request

    bound = bind(translator, flow.body)
    if (api.operation is not Operation.RESPONSES or not api.stores(flow.body)
            or DATABASE not in request.app):  # no database: stored nowhere, like store: false
        flow.translation = (bound, target)
        return None
    recorder = _Recorder(request, flow)
    flow.translation = (_Recording(bound, recorder), target)
    return recorder.remember


class _Recorder:
    def __init__(self, request: web.Request, flow: Flow) -> None:
        database = request.app[DATABASE]
        self.owners, self.store = database.responses, database.gateway_responses
        self.owner = Owner(flow.caller.consumer, flow.deployment, STORE_KEY, STORE_KEY)
        previous = flow.body.get("previous_response_id")
        self.previous = previous if isinstance(previous, str) and previous else None
        own = _OWN_INPUT.pop(flow, None)
        self.items = own if own is not None else items(flow.body.get("input"))
        self.started: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None
        self.ident: str | None = None

    async def remember(self, ident: str) -> None:
        try:
            await self.owners.remember(ident, self.owner)
            answer = self.final or self.started or {"id": ident, "object": "response"}
            await self.store.create(ident, self.previous, str(answer.get("status", "in_progress")),
                                    answer, self.items)
            self.ident = ident
        except unavailable() as exc:
            # The answer was generated (and paid for): it still goes out, but following
            # it up through the gateway will not work.
            log.error("stored response %s not recorded: %s", ident, type(exc).__name__)

    def saw(self, events: list[Event]) -> None:
        for name, data in events:
            if self.started is None and name == b"response.created":
                self.started = orjson.loads(data)["response"]
            elif name in _TERMINAL:
                self._done(orjson.loads(data)["response"])

    def _done(self, response: dict[str, Any]) -> None:
        self.final = response
        if self.ident is None:
            return  # not recorded yet: remember() writes it whole
        ident, status = self.ident, str(response.get("status"))
        task = asyncio.get_running_loop().create_task(self.store.finish(ident, status, response))
        _WRITING[ident] = task
        task.add_done_callback(lambda t: _written(ident, t))


def _written(ident: str, task: asyncio.Task[None]) -> None:
    _WRITING.pop(ident, None)
    if not task.cancelled() and task.exception() is not None:
        log.error("stored response %s not completed: %s", ident, type(task.exception()).__name__)


class _Recording(Translator):
    """The bound translator, showing the recorder each answer it makes."""

    def __init__(self, inner: Translator, recorder: _Recorder) -> None:
        self.inner, self.recorder = inner, recorder

    def request(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return self.inner.request(body, target)

    def response(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        answer = self.inner.response(body, target)
        self.recorder.final = answer
        return answer

    def stream(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return _RecordingStream(self.inner.stream(body, target), self.recorder)


class _RecordingStream(StreamTranslator):
    def __init__(self, inner: StreamTranslator, recorder: _Recorder) -> None:
        self.inner, self.recorder = inner, recorder

    def feed(self, name: bytes | None, data: bytes) -> list[Event]:
        events = self.inner.feed(name, data)
        self.recorder.saw(events)
        return events

    def close(self) -> list[Event]:
        events = self.inner.close()
        self.recorder.saw(events)
        return events


# --- served ------------------------------------------------------------------------------
class _Held:
    """A stored answer read back, with the face of an upstream's answer: the relay reads
    it as it reads one (filters, framing, limits), so a retrieved response is handled
    as a native one is."""

    status = 200

    def __init__(self, data: bytes) -> None:
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
        self.content = self
        self._data = data

    async def readany(self) -> bytes:
        data, self._data = self._data, b""
        return data


async def answer(request: web.Request, flow: Flow, api: Api, method: str, suffix: str,
                 ident: str) -> web.StreamResponse:
    """`method` on the gateway's stored response `ident` (`suffix`: "", "/input_items",
    "/cancel"), the caller's ownership already checked."""
    store = request.app[DATABASE].gateway_responses
    if suffix == "/cancel":
        raise InvalidRequest("Only background responses can be cancelled.", param="response_id")
    writing = _WRITING.get(ident)
    if writing is not None:
        await asyncio.wait([writing], timeout=WAIT_SECONDS)
    record = await store.get(ident)
    if record is None:
        raise ResponseNotFound(f"Response with id '{ident}' not found.", param="response_id")
    if method == "DELETE":
        await store.delete(ident)
        return json_response({"id": ident, "object": "response", "deleted": True})
    if suffix == "/input_items":
        return json_response(_page(record.items, request.query))
    server = request.app[LIVE].config.server
    if flow.stream:
        after = request.query.get("starting_after")
        from gateway.translate.responses_stream import replay

        events = replay(record.response, int(after) if after and after.isdigit() else None)
        data = b"".join(b"event: " + n + b"\ndata: " + d + b"\n\n" for n, d in events if n)
        relay = StreamRelay(api, flow, flow.chain, False, server.max_event_bytes,
                            server.max_response_bytes)
        return await relay.run(request, cast(aiohttp.ClientResponse, _Held(data)))
    return await relay_json(cast(aiohttp.ClientResponse, _Held(orjson.dumps(record.response))), api,
                            flow, flow.chain, server.max_response_bytes)


def _page(found: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    """One page of input items: `order` (desc, the default, or asc), `after` / `before` an
    item id, `limit` 1 to 100 (20)."""
    data = found[::-1] if query.get("order", "desc") != "asc" else list(found)
    ids = [i.get("id") for i in data]
    if query.get("after") in ids:
        data = data[ids.index(query["after"]) + 1:]
    elif query.get("before") in ids:
        data = data[:ids.index(query["before"])]
    raw = query.get("limit", "20")
    limit = min(max(int(raw), 1), 100) if str(raw).isdigit() else 20
    page = data[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(data) > limit}
