"""One request, start to end: the `Flow` (mitmproxy's word) that the middleware makes
when a request arrives and every step reads and writes: authentication (who), the
handler (which deployment, which body), the policies (it *is* their `RequestContext`),
the upstream exchange (which backend, how long), the relay (first byte, what was
generated), accounting (usage, cost), and at the end the access log, the metrics, the
ledger and the trace, which are made of it and nothing else.

Fields hold names, numbers and codes; the body is the only text, and nothing that
records a flow reads it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.core.flavours import Flavour
from policies import PolicyChain, RequestContext

if TYPE_CHECKING:  # the adapters and translators are layers above; a flow only holds them
    from gateway.apis.base import Api
    from gateway.translate.base import Target, Translator
    from gateway.upstream.routing import Deployment

# Until a model route sets the chain in force: no policy looks at anything.
NO_POLICIES = PolicyChain()


class Flow(RequestContext):
    # From RequestContext: deployment, caller, body, stream, usage, disconnected,
    # pending, backend, response_headers, state, timings.
    api: Api  # the inbound API's adapter
    # The policies this request runs under: the runtime's when it started (a reload
    # during the request does not change them).
    chain: PolicyChain = NO_POLICIES
    # A stream whose usage the gateway asked for and the client did not: the relay drops
    # the usage-only event.
    strip_usage: bool = False
    flavour: Flavour = Flavour.OPENAI  # how errors look to this client
    consumer: str = ""
    identity: str = ""  # oid/appid of an Entra caller; never a token
    # The inbound API's name once the request was routed to a deployment: a model call,
    # which the ledger counts and the trace names.
    api_name: str = ""
    alias: str = ""  # the model name the client asked for
    operation: str = ""  # gen_ai.operation.name
    output_type: str = ""  # gen_ai.output.type of media requests (image, speech, text)
    provider: str = ""  # the backend's provider (gateway.providers), once one was tried
    backend_api: str = ""  # the operation the backend was sent (another API when translated)
    # The translator and its target when the backend speaks another API than the client.
    translation: tuple[Translator, Target] | None = None
    default_max_tokens: int = 1024  # the deployment's, for APIs that require max_tokens
    routed_to: Deployment | None = None  # the deployment the alias resolved to
    status: int = 0
    error_code: str = ""
    cost_micros: int = 0  # from the usage and the deployment's (or backend's) prices
    ttft: float | None = None  # seconds to the first streamed event
    upstream_seconds: float = 0.0  # time spent waiting on the upstream
    # Generated text seen so far, as escaped JSON-string pieces: counted when the
    # upstream reports no usage (gateway.enforcement.accounting). A long stream's pieces
    # are counted as they pile up and let go (`output_size` bytes held now): what they
    # came to is `output_counted`, and `counting` the count under way.
    output: list[bytes]
    output_size: int = 0
    output_counted: int = 0
    counting: asyncio.Task[None] | None = None
    # The same of a whole answer, as its texts (decoded already: held once).
    answer_texts: list[str]
    # A count still running when the handler ended (the client hung up): the access-log
    # line and the metrics wait for it, so that they agree with what was settled.
    finishing: asyncio.Task[None] | None = None
    # With telemetry (gateway.ops.telemetry): the server span, its ids for the access log,
    # and what the span and the GenAI metrics are made of.
    span: Any = None
    trace_id: str = ""
    span_id: str = ""
    response_model: str = ""
    finish_reasons: tuple[str, ...] = ()
    ratelimit: str = ""  # admitted, or the limit that refused it

    def __init__(self, request_id: str, route: str, started: float,
                 flavour: Flavour = Flavour.OPENAI) -> None:
        # RequestContext's fields, set here rather than through its __init__: one Flow is
        # made per request, and most of those fields keep their class defaults until set.
        self.request_id = request_id
        self.body = {}
        self.response_headers = {}
        self.state = {}
        self.timings = {}
        self.route = route  # the route template, never the raw path
        self.started = started  # perf_counter
        self.flavour = flavour
        self.output = []
        self.answer_texts = []

    @property
    def prompt_tokens(self) -> int | None:
        return None if self.usage is None else self.usage.prompt_tokens

    @property
    def completion_tokens(self) -> int | None:
        return None if self.usage is None else self.usage.completion_tokens


FLOW = web.RequestKey("flow", Flow)
