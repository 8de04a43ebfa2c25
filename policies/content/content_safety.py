"""Azure AI Content Safety as a filter: text:analyze for the harm categories (and
optionally text:shieldPrompt for jailbreaks on prompts), with per-category
severity thresholds, text split within the service's 10,000-character limit, a
timeout, and a short cache per identical text."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from policies.content.config import ContentSafetyConfig
from policies.content.filters import Filter, Finding
from policies.service_auth import ServiceAuth

SEVERITY = {0: "safe", 2: "low", 4: "medium", 6: "high"}
RANK = {"safe": 0, "low": 1, "medium": 2, "high": 3}
# The service's names, and the keys Azure OpenAI uses for them in results.
CATEGORIES = {"Hate": "hate", "Sexual": "sexual", "SelfHarm": "self_harm", "Violence": "violence"}
MAX_TEXT = 10_000  # code points per text:analyze call
CACHE_ENTRIES = 4096


PostJson = Callable[[str, dict[str, str], dict[str, Any], float], Awaitable[tuple[int, Any]]]


class Services(Protocol):
    """What the gateway lends a filter that calls out: HTTP and credentials."""

    post_json: PostJson

    def auth_headers(self, auth: ServiceAuth,
                     key_header: str) -> Callable[[], Awaitable[dict[str, str]]]: ...


class ServiceError(Exception):
    pass


class ContentSafety(Filter):
    def __init__(self, config: ContentSafetyConfig, services: Services) -> None:
        super().__init__(config)
        self.cfg = config
        base = config.endpoint.rstrip("/") + "/contentsafety/text:"
        self._analyze = f"{base}analyze?api-version={config.api_version}"
        self._shield = f"{base}shieldPrompt?api-version={config.api_version}"
        self._post = services.post_json
        self._headers = services.auth_headers(config.auth, "Ocp-Apim-Subscription-Key")
        self._cache: OrderedDict[tuple[str, str], tuple[float, list[Finding]]] = OrderedDict()
        self.calls = 0

    async def scan(self, text: str, stage: str,
                   hits: frozenset[int] | None = None) -> list[Finding]:
        key = (stage, hashlib.sha256(text.encode()).hexdigest())
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with asyncio.timeout(self.cfg.timeout_seconds):
            findings = await self._scan(text, stage)
        if self.cfg.cache_seconds:
            self._cache[key] = (time.monotonic() + self.cfg.cache_seconds, findings)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return findings

    async def _call(self, url: str, body: dict[str, Any]) -> Any:
        self.calls += 1
        status, answer = await self._post(url, await self._headers(), body,
                                          self.cfg.timeout_seconds)
        if status != 200 or not isinstance(answer, dict):
            code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
            raise ServiceError(f"Content Safety answered HTTP {status} ({code})")
        return answer

    async def _scan(self, text: str, stage: str) -> list[Finding]:
        worst: dict[str, int] = {}
        pieces = [text[i:i + MAX_TEXT] for i in range(0, len(text), MAX_TEXT)] or [""]
        answers = await asyncio.gather(*(
            self._call(self._analyze, {"text": piece, "categories": list(CATEGORIES),
                                       "outputType": "FourSeverityLevels"})
            for piece in pieces))
        for answer in answers:
            for item in answer.get("categoriesAnalysis", []):
                name = CATEGORIES.get(item.get("category"))
                severity = item.get("severity")
                if name and isinstance(severity, int):
                    worst[name] = max(worst.get(name, 0), severity)
        findings = []
        for name, severity in worst.items():
            label = SEVERITY.get(severity, "high" if severity > 4 else "medium")
            threshold = self.cfg.thresholds.get(name)  # type: ignore[call-overload]
            if threshold is not None and RANK[label] >= RANK[threshold]:
                findings.append(Finding(name, 0, len(text), "[FILTERED]", label))
        if self.cfg.shield_prompt and stage == "prompt":
            answer = await self._call(self._shield, {"userPrompt": text[:MAX_TEXT], "documents": []})
            if answer.get("userPromptAnalysis", {}).get("attackDetected"):
                findings.append(Finding("jailbreak", 0, len(text), "[FILTERED]", "high"))
        return findings
