"""What the gateway learns about one request while serving it: the facts the
access log and the metrics are made of. Filled by the handler, read once at the end."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.core.flavours import Flavour
from policies import RequestContext


class Exchange:
    """Not a dataclass: one is made per request, and a generated __init__ assigns every
    field; here the defaults stay on the class and an instance holds what was set."""

    flavour: Flavour = Flavour.OPENAI  # how errors look to this client
    consumer: str = ""
    identity: str = ""  # oid/appid of an Entra caller; never a token
    deployment: str = ""
    api: str = ""  # set on model calls (what the ledger counts)
    backend: str = ""
    status: int = 0
    stream: bool = False
    error_code: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micros: int = 0  # from the usage and the deployment's (or backend's) prices
    ttft: float | None = None  # seconds to the first streamed event
    upstream_seconds: float = 0.0  # time spent waiting on the upstream
    # Generated text seen so far, as escaped JSON-string pieces: counted when the
    # upstream reports no usage (gateway.enforcement.accounting).
    output: list[bytes]
    # A count still running when the handler ended (the client hung up): the access-log
    # line and the metrics wait for it, so that they agree with what was settled.
    finishing: asyncio.Task[None] | None = None
    # With telemetry (gateway.ops.telemetry): the server span, its ids for the access log,
    # and what the span and the GenAI metrics are made of.
    span: Any = None
    trace_id: str = ""
    span_id: str = ""
    alias: str = ""  # the model name the client asked for
    operation: str = ""  # gen_ai.operation.name
    backend_api: str = ""
    response_model: str = ""
    finish_reasons: tuple[str, ...] = ()
    ratelimit: str = ""  # admitted, or the limit that refused it

    def __init__(self, request_id: str, route: str, started: float,
                 flavour: Flavour = Flavour.OPENAI) -> None:
        self.request_id = request_id
        self.route = route  # the route template, never the raw path
        self.started = started  # perf_counter
        self.flavour = flavour
        self.output = []


EXCHANGE = web.RequestKey("exchange", Exchange)
CONTEXT = web.RequestKey("context", RequestContext)  # set once the deployment is known
