"""What a policy sees, and the hooks it may implement.

The gateway builds a `RequestContext` per request and calls the chain; a policy
reads it, may change the body or a streamed event in place, and rejects by
raising a `policies.errors.PolicyError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from policies.wire import WireApi

ANONYMOUS = "anonymous"


@dataclass(slots=True, frozen=True)
class Caller:
    """Who is calling, as resolved by authentication."""

    consumer: str
    # None means every deployment; otherwise the aliases this caller may use.
    deployments: frozenset[str] | None
    # Identity claims that are safe to log (Entra `oid`, `appid`); never secrets.
    identity: tuple[tuple[str, str], ...] = ()

    def may_use(self, alias: str) -> bool:
        return self.deployments is None or alias in self.deployments


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, served from the upstream's prompt cache
    reasoning_tokens: int = 0  # of completion_tokens
    # Counted by the gateway: the upstream reported none (a stream without usage, or
    # one cut short by the client or the upstream).
    estimated: bool = False
    # Media units (images and audio): counted next to the tokens whatever the upstream
    # reports, for quotas and the ledger.
    images: int = 0  # images generated
    audio_seconds: int = 0  # seconds of audio transcribed or translated (whole, rounded up)
    characters: int = 0  # characters of speech input
    image_size: str = ""  # what the images were asked for (or the answer says they are),
    image_quality: str = ""  # which the pricing's per-image prices are looked up by
    # The upstream reported no tokens (dall-e-3, whisper, tts-1): the request is priced
    # by its units.
    by_units: bool = False

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


NOBODY = Caller("", frozenset())  # until authentication says who it is


class RequestContext:
    """What a policy sees of one request. The gateway's per-request `Flow` is one (a
    subclass): a policy reads and writes the very object that the handler, relay,
    accounting, access log, metrics and traces read and write.

    Not a dataclass: one is made per request, and a generated __init__ assigns every
    field; here the defaults stay on the class and an instance holds what was set."""

    api: WireApi  # the API's adapter: where texts and limits are in its bodies
    deployment: str = ""  # the alias, i.e. the config name
    caller: Caller = NOBODY
    body: dict[str, Any]
    stream: bool = False
    # What the upstream reported (or, when it reported nothing, what the gateway counted).
    usage: Usage | None = None
    # What a media request is expected to use before the call (images asked for,
    # characters of speech input, an upload's seconds as its headers tell): reserved
    # against the unit quotas, then settled against `usage`. None for other requests.
    expected: Usage | None = None
    # Set when the client went away before the response was complete.
    disconnected: bool = False
    # The answer is not final (a background job): its usage is not known yet, and what
    # was reserved stays charged.
    pending: bool = False
    # The backend that answered (its name in the config), once one did.
    backend: str = ""
    # Headers a policy wants on the response (e.g. x-ratelimit-remaining-*).
    response_headers: dict[str, str]
    # Scratch space for policies, keyed by policy name.
    state: dict[str, Any]
    # Seconds spent in each policy, for the access log.
    timings: dict[str, float]

    def __init__(self, request_id: str, api: WireApi | None = None, deployment: str = "",
                 caller: Caller | None = None, body: dict[str, Any] | None = None,
                 stream: bool = False) -> None:
        self.request_id = request_id
        if api is not None:
            self.api = api
        if deployment:
            self.deployment = deployment
        if caller is not None:
            self.caller = caller
        self.body = {} if body is None else body
        if stream:
            self.stream = stream
        self.response_headers = {}
        self.state = {}
        self.timings = {}


class Policy:
    """A step of enforcement. Override only the hooks you need: the chain skips
    the ones left as they are, so an unused hook costs nothing per request."""

    name: ClassVar[str] = "policy"
    # A policy that fails unexpectedly rejects the request (503) unless this is set.
    fail_open: bool = False

    async def on_request(self, ctx: RequestContext) -> None:
        """Before the upstream call; may edit `ctx.body` or raise to reject."""

    async def on_response_body(self, ctx: RequestContext, body: dict[str, Any]) -> None:
        """A whole (non-streamed) JSON answer; may edit it in place."""

    async def on_response_chunk(
        self, ctx: RequestContext, event: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """For each whole streamed event (parsed JSON): the events to pass on now.
        Return [] to hold an event back, several to release held ones."""
        return [event]

    async def on_stream_end(self, ctx: RequestContext) -> list[dict[str, Any]]:
        """The upstream stream ended: the events still held back, to send now."""
        return []

    async def on_response(self, ctx: RequestContext) -> None:
        """Once the response is over (complete, failed or abandoned)."""
