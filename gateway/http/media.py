"""The handler of the image and audio routes, and their upstream call: a JSON body
(generations, speech) or a multipart form streamed as it arrives (edits, transcriptions,
`gateway.http.multipart`), sent through the one upstream exchange; the answer relayed as
what it is: JSON (usage read, filters shown it), a transcript in a text format (`text`,
`srt`, `vtt`: filtered whole, sent with its own content type), an event stream (partial
images, transcript deltas, speech events: `gateway.http.relay.StreamRelay`), or audio
bytes passed on chunk by chunk as the upstream produces them.

What a request used is its adapter's (`MediaApi.used`): the answer's tokens when it
reports them, and its media units always; it is charged only when the upstream answered
200."""

from __future__ import annotations

import time

import aiohttp
import orjson
from aiohttp import web

from gateway.apis import MediaApi, ModelRoute
from gateway.core.errors import InvalidRequest, UnsupportedOperation, UpstreamError
from gateway.core.flow import Flow
from gateway.core.tokens import TOKENIZER
from gateway.enforcement.accounting import finish
from gateway.enforcement.limiter import LIMITER
from gateway.http.admission import Handler, admitted
from gateway.http.inbound import parse, read_json
from gateway.http.multipart import ClientClosed, Upload
from gateway.http.relay import StreamRelay, read_body, relay_json
from gateway.ops.metrics import METRICS
from gateway.runtime.live import LIVE
from gateway.runtime.snapshot import Runtime
from gateway.upstream.backends import Backend
from gateway.upstream.client import response_headers
from gateway.upstream.exchange import Request, exchange
from gateway.upstream.routing import Deployment
from policies import ContentBlocked, Usage

_CHUNK = 64 * 1024
_AUDIO = ("audio/", "application/octet-stream")


class MediaCall:
    """One media request's upstream call: its body for the chosen backend, and the answer
    relayed in its own kind."""

    missing_is_answer = False

    def __init__(self, api: MediaApi, upload: Upload | None) -> None:
        self.api, self.upload = api, upload
        self.answered = False  # the upstream answered 200: the request is charged

    def prepare(self, flow: Flow, backend: Backend) -> Request:
        operation = self.api.operation
        flow.backend_api = operation
        model = backend.body_model(operation)
        url = backend.urls[operation]
        if self.upload is None:
            flow.body["model"] = model
            return Request(url, orjson.dumps(flow.body), model)
        body = self.upload.body(model)
        return Request(url, body, model, content_type=body.content_type_value,
                       resendable=self.upload.resendable)

    async def deliver(self, request: web.Request, flow: Flow, backend: Backend,
                      answer: aiohttp.ClientResponse, headers: dict[str, str]) -> web.StreamResponse:
        server = request.app[LIVE].config.server
        api, chain = self.api, flow.chain
        if answer.status != 200:
            return await relay_json(answer, api, flow, chain, server.max_response_bytes,
                                    overrides=headers)
        self.answered = True
        kind = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "text/event-stream" or (flow.stream and not kind):
            relay = StreamRelay(api, flow, chain, False, server.max_event_bytes,
                                server.max_response_bytes)
            return await relay.run(request, answer)
        if kind == "application/json" or (not kind and api.output_type != "speech"):
            return await relay_json(answer, api, flow, chain, server.max_response_bytes,
                                    overrides=headers)
        if kind.startswith("text/"):
            return await _relay_text(answer, flow, server.max_response_bytes)
        if api.output_type == "speech" or kind.startswith(_AUDIO):
            return await _relay_audio(request, answer, flow, server.max_response_bytes)
        raise UpstreamError(f"The upstream answered with {kind!r}, which this API does not "
                            "answer with.")


async def _relay_text(answer: aiohttp.ClientResponse, flow: Flow, limit: int) -> web.Response:
    """A transcript as text, srt or vtt: shown to the filters as one text, sent as it came
    (redacted where they redact; a block raises, and the transcript is withheld)."""
    started = time.perf_counter()
    data: bytes | bytearray = await read_body(answer, limit)
    flow.upstream_seconds += time.perf_counter() - started
    if flow.chain.looks_at_bodies:
        original = data.decode(errors="replace")
        holder = {"text": original}
        await flow.chain.on_response_body(flow, holder)
        if holder["text"] != original:
            data = holder["text"].encode()
    content_type = answer.headers.get("Content-Type", "text/plain; charset=utf-8")
    return web.Response(body=data, status=200, headers={**response_headers(answer.headers),
                                                        "Content-Type": content_type[:100]})


async def _relay_audio(request: web.Request, answer: aiohttp.ClientResponse, flow: Flow,
                       limit: int) -> web.StreamResponse:
    """Audio bytes, chunk by chunk as the upstream produces them. A failure after the
    first byte cannot be said in the audio: the client's connection is cut, so that its
    read fails rather than end with a short file that looks whole."""
    given = answer.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
    content_type = given if given.startswith(_AUDIO) and len(given) < 64 else "application/octet-stream"
    response = web.StreamResponse(status=200, headers={**response_headers(answer.headers),
                                                       "Content-Type": content_type})
    await response.prepare(request)
    received = 0
    while True:
        started = time.perf_counter()
        try:
            chunk = await answer.content.readany()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            flow.error_code = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_error"
            break
        finally:
            flow.upstream_seconds += time.perf_counter() - started
        received += len(chunk)
        if received > limit:
            flow.error_code = "upstream_error"
            break
        if not chunk:
            await response.write_eof()
            return response
        if flow.ttft is None:
            flow.ttft = time.perf_counter() - flow.started
        await response.write(chunk)
    if request.transport is not None:
        request.transport.abort()
    return response


def media_handler(route: ModelRoute) -> Handler:
    api = route.api
    assert isinstance(api, MediaApi)
    from_path = "{deployment}" in route.path

    async def serve(request: web.Request, flow: Flow, runtime: Runtime,
                    credentials: list[str]) -> web.StreamResponse:
        server = runtime.config.server
        path_name = request.match_info["deployment"] if from_path else None
        upload: Upload | None = None
        try:
            if api.form and request.content_type == "multipart/form-data":
                upload = Upload(request, server, api.measures)
                await upload.read_head(path_name is not None)
                body = upload.fields
            elif api.form and api.operation != "images/edits":
                raise InvalidRequest(f"{api.name} takes a multipart/form-data body.")
            else:  # JSON (an edit may name its images by URL or file id)
                body = await read_json(request, server)
            inbound = parse(api, body, request.headers, path_name, route.model_from_headers)
            deployment = runtime.resolve(inbound.alias, flow.caller)
            if upload is not None and deployment.config.content_filter is not None:
                upload.checked = api.checked
            return await _call(request, flow, runtime, credentials, api, deployment,
                               inbound.alias, inbound.body, inbound.stream, upload)
        except ClientClosed:
            raise ConnectionResetError("the client went away during its upload") from None
        finally:
            if upload is not None:
                upload.close()

    return admitted(serve)


async def _call(request: web.Request, flow: Flow, runtime: Runtime, credentials: list[str],
                api: MediaApi, deployment: Deployment, alias: str, body: dict[str, object],
                stream: bool, upload: Upload | None) -> web.StreamResponse:
    app = request.app
    flow.api, flow.api_name, flow.operation = api, api.name, api.gen_ai_operation
    flow.deployment, flow.alias, flow.body, flow.stream = deployment.name, alias, body, stream
    flow.default_max_tokens = deployment.config.default_max_tokens
    flow.routed_to, flow.output_type = deployment, api.output_type
    flow.expected = api.expected(body, upload.seconds() if upload is not None else None)
    chain = flow.chain = runtime.chain
    call = MediaCall(api, upload)
    gauge, labels = app[METRICS].inflight, (deployment.name,)
    gauge.inc(labels)
    try:
        if chain.looks_at_requests:
            try:
                await chain.on_request(flow)
            except ContentBlocked as exc:
                raise api.blocked(exc) from None
        return await exchange(request, flow, call, _backends(deployment, api),
                              deployment.config.routing, runtime.headers, credentials)
    except BaseException:
        flow.disconnected = request.transport is None or request.transport.is_closing()
        raise
    finally:
        gauge.inc(labels, -1)
        seconds = upload.seconds() if upload is not None else None
        if call.answered:
            flow.usage = api.used(flow.body, flow.usage, seconds)
        elif flow.usage is None and flow.disconnected and flow.backend:
            # The client left before the answer: nothing is charged, and nothing is counted
            # with a text tokenizer (audio and images are not text).
            flow.usage = Usage(by_units=True)
        await finish(app[TOKENIZER], app[LIMITER].settlements, api, flow, chain,
                     deployment.price(flow.backend), deployment.encoding)


def _backends(deployment: Deployment, api: MediaApi) -> list[Backend]:
    """The backends to try, in order: those that serve the operation."""
    now = time.monotonic()
    tries = [b for b in deployment.candidates(now) if api.operation in b.urls]
    if tries:
        return tries
    if not any(api.operation in b.urls for b in deployment.backends):
        providers = ", ".join(sorted({b.provider.name for b in deployment.backends}))
        raise UnsupportedOperation(
            f"No backend of deployment {deployment.name} serves {api.name} "
            f"(its backends speak {providers}).")
    raise deployment.nothing_available(now)

