"""A deployment's backends as the gateway calls them: URLs, auth, health and timeouts,
built from a backend's config and its provider (`gateway.providers`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from gateway.config import BackendConfig, BreakerConfig, Spillover
from gateway.core.operations import Operation
from gateway.providers import PROVIDERS, Provider
from gateway.upstream.credentials import Credentials, TokenProvider
from gateway.upstream.health import BackendHealth
from policies.service_auth import ApiKeyAuth, EntraAuth


class SecretMissing(Exception):
    """A backend's key names an environment variable or file that is not there."""


def read_key(auth: ApiKeyAuth, where: str) -> str:
    if auth.key_env is not None:
        value = os.environ.get(auth.key_env, "").strip()
        if not value:
            raise SecretMissing(f"{where}: environment variable {auth.key_env} is not set")
        return value
    assert auth.key_file is not None
    try:
        value = auth.key_file.read_text().strip()
    except OSError as exc:
        raise SecretMissing(f"{where}: cannot read key file {auth.key_file}: {exc.strerror}") from exc
    if not value:
        raise SecretMissing(f"{where}: key file {auth.key_file} is empty")
    return value


def default_name(config: BackendConfig) -> str:
    host = urlsplit(config.url).netloc
    return f"{host}/{config.deployment}" if config.deployment else host


@dataclass(slots=True, eq=False)
class Backend:
    name: str
    provider: Provider
    priority: int
    weight: int
    model: str
    urls: dict[Operation, str]  # what it serves: operation -> full upstream URL
    headers: dict[str, str]  # static auth headers (api keys)
    token: TokenProvider | None
    # Where responses this backend stores live: backends of one resource share them.
    store_key: str
    timeout: aiohttp.ClientTimeout
    response_timeout: float
    health: BackendHealth
    spillover: Spillover | None = None
    max_cooldown: float = 300.0
    # The model the body names, per operation (the provider's choice).
    body_models: dict[Operation, str] = field(default_factory=dict)
    inflight: int = 0

    @property
    def defaults(self) -> Mapping[str, str]:
        """Headers sent when the client did not send its own (anthropic-version)."""
        return self.provider.defaults

    def check_spillover(self, headers: Mapping[str, str]) -> None:
        """After an answer: when its reported quota is under the threshold, prefer others."""
        rule = self.spillover
        if rule is None:
            return
        for threshold, header in ((rule.remaining_tokens, "x-ratelimit-remaining-tokens"),
                                  (rule.remaining_requests, "x-ratelimit-remaining-requests")):
            value = headers.get(header)
            if threshold is not None and value is not None and value.isascii() \
                    and value.isdigit() and int(value) < threshold:
                self.health.spill(rule.seconds)
                return

    def body_model(self, operation: Operation) -> str:
        """The body's `model` for an upstream call."""
        return self.body_models.get(operation, self.model)

    def stored_url(self, suffix: str) -> str:
        """The URL of a stored response (`/{id}`, `/{id}/input_items`, ...)."""
        path, _, query = self.urls[Operation.RESPONSES].partition("?")
        return path + suffix + ("?" + query if query else "")

    async def auth_headers(self) -> dict[str, str]:
        if self.token is None:
            return self.headers
        return {"Authorization": "Bearer " + await self.token.token()}


def build_backend(
    config: BackendConfig, model: str, credentials: Credentials, where: str,
    breaker: BreakerConfig,
) -> Backend:
    provider = PROVIDERS[config.provider]
    urls = provider.urls(config)
    if config.apis is not None:  # it serves less than its provider: the rest is translated
        urls = {op: url for op, url in urls.items() if op in config.apis}
    headers: dict[str, str] = {}
    token = None
    if isinstance(config.auth, ApiKeyAuth):
        headers = provider.key_headers(read_key(config.auth, where))
    elif isinstance(config.auth, EntraAuth):
        token = credentials.provider(config.auth, where)
    t = config.timeouts
    model = config.model or model
    return Backend(
        name=config.name or default_name(config),
        provider=provider,
        priority=config.priority,
        weight=config.weight,
        model=model,
        urls=urls,
        headers=headers,
        token=token,
        store_key=f"{provider.name} {config.url.rstrip('/')}",
        timeout=aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.idle),
        response_timeout=t.response,
        health=BackendHealth(breaker.failures, breaker.open_seconds, breaker.failure_ratio,
                             breaker.window_seconds, breaker.min_requests),
        spillover=config.spillover,
        max_cooldown=config.max_cooldown_seconds,
        body_models={op: m for op in urls if (m := provider.body_model(op, model, config)) != model},
    )
