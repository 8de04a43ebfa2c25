"""Runs policies in their configured order; fails closed unless a policy opts out."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from policies.base import Policy, RequestContext
from policies.errors import PolicyError, PolicyUnavailable

log = logging.getLogger("policies.chain")


def _overrides(policy: Policy, hook: str) -> bool:
    return getattr(type(policy), hook) is not getattr(Policy, hook)


class PolicyChain:
    def __init__(self, policies: Sequence[Policy] = ()) -> None:
        self.policies = tuple(policies)
        self._on_request = [p for p in self.policies if _overrides(p, "on_request")]
        self._on_chunk = [p for p in self.policies if _overrides(p, "on_response_chunk")]
        self._on_body = [p for p in self.policies if _overrides(p, "on_response_body")]
        self._on_response = [p for p in self.policies if _overrides(p, "on_response")]

    @property
    def looks_at_requests(self) -> bool:
        return bool(self._on_request)

    @property
    def looks_at_chunks(self) -> bool:
        """False means streamed events can pass through as bytes."""
        return bool(self._on_chunk)

    @property
    def looks_at_bodies(self) -> bool:
        """False means a JSON answer passes through as bytes."""
        return bool(self._on_body)

    @property
    def looks_at_responses(self) -> bool:
        return bool(self._on_response)

    async def on_request(self, ctx: RequestContext) -> None:
        for policy in self._on_request:
            started = time.perf_counter()
            try:
                await policy.on_request(ctx)
            except PolicyError:
                raise
            except Exception as exc:
                self._failed(policy, "on_request", exc)
            finally:
                ctx.timings[policy.name] = time.perf_counter() - started

    async def on_response_body(self, ctx: RequestContext, body: dict[str, Any]) -> None:
        for policy in self._on_body:
            try:
                await policy.on_response_body(ctx, body)
            except PolicyError:
                raise
            except Exception as exc:
                self._failed(policy, "on_response_body", exc)

    async def on_response_chunk(
        self, ctx: RequestContext, event: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Events flow through the policies in order; each may hold or release."""
        events = [event]
        for policy in self._on_chunk:
            passed: list[dict[str, Any]] = []
            for item in events:
                try:
                    passed += await policy.on_response_chunk(ctx, item)
                except PolicyError:
                    raise
                except Exception as exc:
                    self._failed(policy, "on_response_chunk", exc)
                    passed.append(item)
            events = passed
        return events

    async def on_stream_end(self, ctx: RequestContext) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for policy in self._on_chunk:
            passed: list[dict[str, Any]] = []
            for item in events:
                passed += await policy.on_response_chunk(ctx, item)
            events = passed + await policy.on_stream_end(ctx)
        return events

    async def on_response(self, ctx: RequestContext) -> None:
        # Every policy gets its turn even if an earlier one fails: settlement
        # (refunds, counters) must not be skipped because a neighbour broke.
        for policy in self._on_response:
            try:
                await policy.on_response(ctx)
            except Exception:
                log.exception("policy %s failed in on_response", policy.name)

    @staticmethod
    def _failed(policy: Policy, hook: str, exc: Exception) -> None:
        if policy.fail_open:
            log.warning("policy %s failed in %s; failing open: %r", policy.name, hook, exc)
            return
        log.error("policy %s failed in %s; failing closed: %r", policy.name, hook, exc)
        raise PolicyUnavailable(
            f"The {policy.name} policy could not be evaluated; the request was not sent."
        ) from exc
