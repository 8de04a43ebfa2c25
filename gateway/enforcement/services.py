"""What the gateway lends policies that call other services (Content Safety): an
HTTP POST on the app's pooled session, and auth headers from the same credential
machinery as the upstreams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from gateway.upstream.backends import read_key
from gateway.upstream.credentials import Credentials
from policies.service_auth import ApiKeyAuth, EntraAuth, ServiceAuth


class GatewayServices:
    def __init__(self, session: aiohttp.ClientSession, credentials: Credentials) -> None:
        self._session = session
        self._credentials = credentials

    async def post_json(self, url: str, headers: dict[str, str], body: dict[str, Any],
                        timeout: float) -> tuple[int, Any]:  # noqa: ASYNC109 (aiohttp takes it)
        async with self._session.post(
            url, data=orjson.dumps(body), timeout=aiohttp.ClientTimeout(total=timeout),
            headers={**headers, "Content-Type": "application/json"},
        ) as response:
            raw = await response.read()
        try:
            return response.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return response.status, None

    def auth_headers(self, auth: ServiceAuth,
                     key_header: str) -> Callable[[], Awaitable[dict[str, str]]]:
        if isinstance(auth, ApiKeyAuth):
            static = {key_header: read_key(auth, "content_filters")}
        elif isinstance(auth, EntraAuth):
            provider = self._credentials.provider(auth, "content_filters")

            async def bearer() -> dict[str, str]:
                return {"Authorization": "Bearer " + await provider.token()}

            return bearer
        else:
            static = {}

        async def fixed() -> dict[str, str]:
            return static

        return fixed
