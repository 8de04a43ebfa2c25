"""The one place that calls upstreams: the pooled ClientSession, the headers that
may cross, timeouts, and turning transport failures into gateway errors."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Protocol, runtime_checkable

import aiohttp
from aiohttp import web
from aiohttp.payload import Payload
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.core.errors import GatewayError, UpstreamError, UpstreamTimeout
from gateway.upstream.backends import Backend
from policies.auth import presented_credentials

# The only request headers that reach an upstream: what the APIs define for their
# clients, tracing, and Azure's client request id. Everything else (credentials under
# any name, cookies, forwarding and hop-by-hop headers, SDK telemetry, an OpenAI
# organisation or project that would pick another account) stays here.
FORWARDED = frozenset({
    "accept", "user-agent", "anthropic-version", "anthropic-beta", "openai-beta", "extra-parameters",
    "x-ms-client-request-id", "traceparent", "tracestate", "baggage", "idempotency-key",
})
# A header value this long that holds a presented credential is a credential.
_SECRET_MIN = 8

# Upstream response headers worth passing to the client; everything else stays here.
PASS_RESPONSE = (
    "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
    "x-ratelimit-limit-requests", "x-ratelimit-limit-tokens", "retry-after", "retry-after-ms",
    "x-ms-region", "x-ms-rai-invoked", "apim-request-id", "azureml-model-session",
    "openai-processing-ms",
)


class HeaderPolicy:
    """Which client headers cross: the built-in set and the operator's additions."""

    def __init__(self, extra: tuple[str, ...] = ()) -> None:
        names = {e.lower() for e in extra if not e.endswith("*")}
        self.names = FORWARDED | (names - _NEVER)
        self.prefixes = tuple(e[:-1].lower() for e in extra if e.endswith("*"))
        self.seen: dict[str, bool] = {}  # answers for header names met before

    def allows(self, name: str) -> bool:
        """`name` as the client spelled it."""
        known = self.seen.get(name)
        if known is not None:
            return known
        lowered = name.lower()
        allowed = lowered in self.names or (bool(self.prefixes) and lowered.startswith(
            self.prefixes) and lowered not in _NEVER)
        if len(self.seen) < 4096:  # clients choose header names: bounded
            self.seen[name] = allowed
        return allowed


# Never, whatever an operator adds: the inbound credentials and what the gateway sets.
_NEVER = frozenset({"authorization", "api-key", "x-api-key", "ocp-apim-subscription-key",
                    "proxy-authorization", "cookie", "host", "content-length", "content-type",
                    "content-encoding", "transfer-encoding", "connection", "te", "upgrade"})
BUILT_IN = HeaderPolicy()


def forward_headers(inbound: Mapping[str, str], auth: Mapping[str, str],
                    defaults: Mapping[str, str] | None = None,
                    policy: HeaderPolicy = BUILT_IN,
                    credentials: list[str] | None = None) -> CIMultiDict[str]:
    """The headers of an upstream call: the allowed ones of the client's, less any that
    its Connection header names (hop-by-hop, whatever they are called) or that carry
    one of the caller's credentials (`credentials`: `presented_credentials(inbound)`,
    when the caller has them); then defaults, then the gateway's own auth."""
    connection = inbound.get("Connection")
    hop = {t.strip().lower() for t in connection.split(",")} if connection else None
    if credentials is None:
        credentials = presented_credentials(inbound)
    secrets = [c for c in credentials if len(c) >= _SECRET_MIN]
    seen = policy.seen
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in inbound.items():
        allowed = seen.get(name)  # the memo first: a call per header adds up
        if allowed is None:
            allowed = policy.allows(name)
        if not allowed or (hop is not None and name.lower() in hop):
            continue
        for secret in secrets:
            if secret in value:
                break
        else:
            out.add(name, value)
    for name, value in (defaults or {}).items():
        out.setdefault(name, value)
    out["Content-Type"] = "application/json"
    out.update(auth)
    return out


def response_headers(upstream: CIMultiDictProxy[str]) -> dict[str, str]:
    """The upstream's headers a client may see. Counts must be plain ASCII numbers (an
    upstream's other digits, or a value that is not a number, stay here) and no value may
    be longer than an honest one would be."""
    found = {name: upstream[name] for name in PASS_RESPONSE if name in upstream}
    return {name: value for name, value in found.items() if len(value) <= 256 and (
        name not in _NUMERIC or _NUMBER.fullmatch(value))}


_NUMERIC = frozenset({"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
                      "x-ratelimit-limit-requests", "x-ratelimit-limit-tokens", "retry-after",
                      "retry-after-ms", "openai-processing-ms"})
_NUMBER = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,6})?")


@runtime_checkable
class Streamed(Protocol):
    """A body read from the client while it is sent (an upload): the response timeout
    counts from its last byte sent, not from the call's start, so that a slow upload is
    not the upstream's delay."""

    def paced_by(self, deadline: asyncio.Timeout, seconds: float) -> None:
        """Move `deadline` to `seconds` after each chunk sent."""


@asynccontextmanager
async def call(
    session: aiohttp.ClientSession,
    backend: Backend,
    url: str,
    headers: CIMultiDict[str],
    body: bytes | Payload | None,
    method: str = "POST",
    content_type: str | None = None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """Call the upstream (a POST, unless told otherwise); yields once the response
    headers are in."""
    if content_type is not None and content_type != "application/json":
        headers["Content-Type"] = content_type  # forward_headers set JSON's
    try:
        async with asyncio.timeout(backend.response_timeout) as deadline:
            # A Protocol's isinstance is slow: a JSON body (bytes) never asks it.
            if body is not None and type(body) is not bytes and isinstance(body, Streamed):
                body.paced_by(deadline, backend.response_timeout)
            response = await session.request(
                method, url, data=body, headers=headers, timeout=backend.timeout,
                allow_redirects=False,
            )
    except TimeoutError:
        raise UpstreamTimeout(
            f"The upstream {backend.name} did not answer within {backend.response_timeout:g} s."
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        if isinstance(exc.__cause__, GatewayError):
            # The body's own source failed (a client that stalled or sent too much while
            # its upload streamed): that is the client's error, not the upstream's.
            raise exc.__cause__ from None
        raise UpstreamError(
            f"The upstream {backend.name} could not be reached: {type(exc).__name__}."
        ) from None
    try:
        yield response
    finally:
        # release() returns the connection to the pool when the body was read;
        # close() drops it when it was not (a cancelled or failed stream).
        if response.content.at_eof():
            response.release()
        else:
            response.close()


SESSION = web.AppKey("session", aiohttp.ClientSession)  # the one pooled upstream session


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    """The one pooled ClientSession of the app, for every upstream call."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    # auto_decompress off: bodies pass through as the upstream sent them, and
    # Accept-Encoding is never forwarded, so they arrive uncompressed.
    app[SESSION] = session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        # A cookie one upstream sets (an affinity cookie, say) must not ride along on
        # other consumers' calls: the gateway keeps none.
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    yield
    await session.close()
