"""The one place that calls upstreams: the pooled ClientSession, the headers that
may cross, timeouts, and turning transport failures into gateway errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.backends import Backend
from gateway.errors import UpstreamError, UpstreamTimeout

# Never forwarded upstream: inbound credentials, cookies, hop-by-hop headers, and
# what the gateway sets itself.
_DROP_REQUEST = frozenset(
    h.lower()
    for h in (
        "Host", "Content-Length", "Content-Type", "Content-Encoding", "Accept-Encoding",
        "Authorization", "api-key", "Ocp-Apim-Subscription-Key", "x-api-key", "Cookie",
        "Proxy-Authorization", "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Expect", "Forwarded", "X-Forwarded-For",
        "X-Forwarded-Host", "X-Forwarded-Proto", "x-ms-model-mesh-model-name",
        "azureml-model-deployment",
    )
)

# Upstream response headers worth passing to the client; everything else stays here.
PASS_RESPONSE = (
    "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
    "x-ratelimit-limit-requests", "x-ratelimit-limit-tokens", "retry-after", "retry-after-ms",
    "x-ms-region", "x-ms-rai-invoked", "apim-request-id", "azureml-model-session",
    "openai-processing-ms",
)


def forward_headers(inbound: Mapping[str, str], auth: Mapping[str, str],
                    defaults: Mapping[str, str] = {}) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in inbound.items():
        if name.lower() not in _DROP_REQUEST:
            out.add(name, value)
    for name, value in defaults.items():
        out.setdefault(name, value)
    out["Content-Type"] = "application/json"
    out.update(auth)
    return out


def response_headers(upstream: CIMultiDictProxy[str]) -> dict[str, str]:
    return {h: upstream[h] for h in PASS_RESPONSE if h in upstream}


@asynccontextmanager
async def call(
    session: aiohttp.ClientSession,
    backend: Backend,
    url: str,
    headers: CIMultiDict[str],
    body: bytes | None,
    method: str = "POST",
) -> AsyncIterator[aiohttp.ClientResponse]:
    """Call the upstream (a POST, unless told otherwise); yields once the response
    headers are in."""
    try:
        async with asyncio.timeout(backend.response_timeout):
            response = await session.request(
                method, url, data=body, headers=headers, timeout=backend.timeout,
                allow_redirects=False,
            )
    except TimeoutError:
        raise UpstreamTimeout(
            f"The upstream {backend.name} did not answer within {backend.response_timeout:g} s."
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
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
