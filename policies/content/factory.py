"""Filters from their config: the one place that knows every kind of filter, so that the
filter kinds (`filters`, `content_safety`) need not know each other."""

from __future__ import annotations

from typing import Any

from policies.content.config import BlocklistConfig, FilterConfig, HookConfig, PiiConfig
from policies.content.content_safety import ContentSafety
from policies.content.filters import Blocklist, Filter, Hook, Pii


def build(config: FilterConfig, services: Any = None) -> Filter:
    if isinstance(config, BlocklistConfig):
        return Blocklist(config)
    if isinstance(config, PiiConfig):
        return Pii(config)
    if isinstance(config, HookConfig):
        return Hook(config)
    if services is None:
        raise TypeError("an azure-content-safety filter needs the gateway's HTTP services")
    return ContentSafety(config, services)
