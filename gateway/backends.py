"""Upstream backends: the URL, body model and auth header each upstream `api` expects."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from gateway.backend_health import BackendHealth
from gateway.config import DEFAULT_API_VERSION, BackendConfig, BreakerConfig, Spillover
from gateway.credentials import Credentials, TokenProvider
from policies.service_auth import ApiKeyAuth, EntraAuth

OPERATIONS = {
    "azure-openai": ("chat/completions", "completions", "embeddings"),
    "azure-ai-inference": ("chat/completions", "embeddings", "images/embeddings"),
    "openai": ("chat/completions", "completions", "embeddings"),
}


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
    api: str
    priority: int
    weight: int
    model: str
    urls: dict[str, str]  # operation -> full upstream URL
    headers: dict[str, str]  # static auth headers (api keys)
    token: TokenProvider | None
    timeout: aiohttp.ClientTimeout
    response_timeout: float
    health: BackendHealth
    spillover: Spillover | None = None
    max_cooldown: float = 300.0
    inflight: int = 0

    def check_spillover(self, headers: Mapping[str, str]) -> None:
        """After an answer: when its reported quota is under the threshold, prefer others."""
        rule = self.spillover
        if rule is None:
            return
        for threshold, header in ((rule.remaining_tokens, "x-ratelimit-remaining-tokens"),
                                  (rule.remaining_requests, "x-ratelimit-remaining-requests")):
            value = headers.get(header)
            if threshold is not None and value is not None and value.isdigit() \
                    and int(value) < threshold:
                self.health.spill(rule.seconds)
                return

    def body_model(self, operation: str) -> str:
        """The body's `model` for an upstream call."""
        return self.model

    async def auth_headers(self) -> dict[str, str]:
        if self.token is None:
            return self.headers
        return {"Authorization": "Bearer " + await self.token.token()}


def build_backend(
    config: BackendConfig, model: str, credentials: Credentials, where: str,
    breaker: BreakerConfig,
) -> Backend:
    base = config.url.rstrip("/")
    version = config.api_version or DEFAULT_API_VERSION.get(config.api, "")
    urls: dict[str, str] = {}
    for op in OPERATIONS[config.api]:
        if config.api == "azure-openai":
            urls[op] = f"{base}/openai/deployments/{config.deployment}/{op}?api-version={version}"
        elif config.api == "azure-ai-inference":
            urls[op] = f"{base}/models/{op}?api-version={version}"
        else:
            urls[op] = f"{base}/{op}"
    headers: dict[str, str] = {}
    token = None
    if isinstance(config.auth, ApiKeyAuth):
        key = read_key(config.auth, where)
        if config.api == "openai":
            headers["Authorization"] = f"Bearer {key}"
        else:
            headers["api-key"] = key
    elif isinstance(config.auth, EntraAuth):
        token = credentials.provider(config.auth, where)
    t = config.timeouts
    return Backend(
        name=config.name or default_name(config),
        api=config.api,
        priority=config.priority,
        weight=config.weight,
        model=config.model or model,
        urls=urls,
        headers=headers,
        token=token,
        timeout=aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.idle),
        response_timeout=t.response,
        health=BackendHealth(breaker.failures, breaker.open_seconds, breaker.failure_ratio,
                             breaker.window_seconds, breaker.min_requests),
        spillover=config.spillover,
        max_cooldown=config.max_cooldown_seconds,
    )
