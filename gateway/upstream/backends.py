"""Upstream backends: the URL, body model and auth header each upstream `api` expects."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from gateway.config import DEFAULT_API_VERSION, BackendConfig, BreakerConfig, Spillover
from gateway.upstream.credentials import Credentials, TokenProvider
from gateway.upstream.health import BackendHealth
from policies.service_auth import ApiKeyAuth, EntraAuth

ANTHROPIC_VERSION = "2023-06-01"


def upstream_urls(config: BackendConfig) -> dict[str, str]:
    """operation -> the full upstream URL, for every operation the backend's `api` has."""
    base = config.url.rstrip("/")
    version = config.api_version or DEFAULT_API_VERSION.get(config.api, "")
    if config.api == "azure-openai":
        urls = {op: f"{base}/openai/deployments/{config.deployment}/{op}?api-version={version}"
                for op in ("chat/completions", "completions", "embeddings")}
        # Responses live at the resource, not under a deployment: the v1 route, or the
        # api-version one when the backend names a version.
        urls["responses"] = (f"{base}/openai/responses?api-version={config.api_version}"
                             if config.api_version else f"{base}/openai/v1/responses")
        return urls
    if config.api == "azure-ai-inference":
        return {op: f"{base}/models/{op}?api-version={version}"
                for op in ("chat/completions", "embeddings", "images/embeddings")}
    if config.api == "anthropic":
        return {op: f"{base}/v1/{op}" for op in ("messages", "messages/count_tokens")}
    return {op: f"{base}/{op}" for op in ("chat/completions", "completions", "embeddings", "responses")}


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
    # Where responses this backend stores live: backends of one resource share them.
    store_key: str
    timeout: aiohttp.ClientTimeout
    response_timeout: float
    health: BackendHealth
    spillover: Spillover | None = None
    max_cooldown: float = 300.0
    deployment_name: str | None = None
    # Sent when the client did not send its own (anthropic-version).
    defaults: Mapping[str, str] = field(default_factory=dict)
    inflight: int = 0

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

    def body_model(self, operation: str) -> str:
        """The body's `model` for an upstream call: on Azure's resource-level routes
        (Responses) that is the deployment's name."""
        if operation == "responses" and self.deployment_name:
            return self.deployment_name
        return self.model

    def stored_url(self, suffix: str) -> str:
        """The URL of a stored response (`/{id}`, `/{id}/input_items`, ...)."""
        path, _, query = self.urls["responses"].partition("?")
        return path + suffix + ("?" + query if query else "")

    async def auth_headers(self) -> dict[str, str]:
        if self.token is None:
            return self.headers
        return {"Authorization": "Bearer " + await self.token.token()}


def build_backend(
    config: BackendConfig, model: str, credentials: Credentials, where: str,
    breaker: BreakerConfig,
) -> Backend:
    urls = upstream_urls(config)
    headers: dict[str, str] = {}
    token = None
    if isinstance(config.auth, ApiKeyAuth):
        key = read_key(config.auth, where)
        if config.api == "openai":
            headers["Authorization"] = f"Bearer {key}"
        elif config.api == "anthropic":
            headers["x-api-key"] = key
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
        store_key=f"{config.api} {config.url.rstrip('/')}",
        timeout=aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.idle),
        response_timeout=t.response,
        health=BackendHealth(breaker.failures, breaker.open_seconds, breaker.failure_ratio,
                             breaker.window_seconds, breaker.min_requests),
        spillover=config.spillover,
        max_cooldown=config.max_cooldown_seconds,
        deployment_name=config.deployment,
        defaults={"anthropic-version": ANTHROPIC_VERSION} if config.api == "anthropic" else {},
    )
