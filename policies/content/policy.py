"""Content filtering as a policy: prompts before the upstream call, completions in
whole answers and in streams, where text reaches the client only after the
filters have seen it, through a bounded hold-back window (`holdback`).

Where the texts are, and how a refusal looks, is the request's API adapter's
business (`ctx.api`, see `policies.wire`); nothing here knows a wire shape.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.base import Policy, RequestContext
from policies.content.holdback import Holdback
from policies.content.profile import ContentProfile, Outcome, redact
from policies.errors import ContentBlocked, PolicyUnavailable
from policies.wire import Results


@dataclass
class ContentStats:
    """Read by the gateway's metrics at scrape time."""

    actions: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    seconds: float = 0.0
    checks: int = 0


@dataclass
class _State:
    prompt: Results = field(default_factory=dict)
    holdbacks: dict[Hashable, Holdback] = field(default_factory=dict)
    seconds: float = 0.0  # spent on this request's prompt checks


def _blocked(outcome: Outcome, stage: str) -> ContentBlocked:
    which = ", ".join(sorted(outcome.results))
    return ContentBlocked(
        f"The {stage} was filtered due to the content management policy ({which}). "
        "Please modify it and retry.", result=outcome.results)


class ContentFilterPolicy(Policy):
    name = "content"

    def __init__(self, profiles: Mapping[str, ContentProfile], holdback_chars: int = 64,
                 stats: ContentStats | None = None, budget_seconds: float = 5.0) -> None:
        self.profiles = dict(profiles)  # deployment -> profile
        self.holdback_chars = holdback_chars
        self.stats = stats or ContentStats()
        # Filter time one request may use: a linear-time filter still costs time in
        # proportion to the text, and one request must not take the loop for long.
        self.budget_seconds = budget_seconds

    async def _check(self, ctx: RequestContext, profile: ContentProfile, text: str,
                     stage: str) -> Outcome:
        """One check, within the budget. The budget bounds the work of a check (a call to
        Content Safety that hangs, a hook that takes its time), and the prompt's checks
        together (the prompt is one bounded input); never a stream's lifetime: a long
        answer is many checks of its hold-back window, each small, and whether it
        survives must not depend on how busy the machine is."""
        state: _State | None = ctx.state.get(self.name)
        if stage == "prompt" and state is not None and state.seconds > self.budget_seconds:
            raise PolicyUnavailable(
                f"The content filters used up this request's time budget of "
                f"{self.budget_seconds:g} s on its prompt; it was not served.")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.budget_seconds):
                outcome = await profile.check(text, stage)
        except TimeoutError:
            raise PolicyUnavailable(
                f"A content check of the {stage} took longer than its time budget of "
                f"{self.budget_seconds:g} s; "
                + ("it was not served." if stage == "prompt"
                   else "the rest of the answer was not served.")) from None
        finally:
            spent = time.perf_counter() - started
            self.stats.seconds += spent
            self.stats.checks += 1
            if state is not None and stage == "prompt":
                state.seconds += spent
        for action in outcome.actions:
            self.stats.actions[(ctx.deployment, stage, action)] += 1
        return outcome

    async def on_request(self, ctx: RequestContext) -> None:
        profile = self.profiles.get(ctx.deployment)
        if profile is None:
            return
        state = ctx.state[self.name] = _State()
        if not profile.applies("prompt"):
            return
        for container, key in ctx.api.prompt_texts(ctx.body):
            text = container[key]
            if not text:
                continue
            outcome = await self._check(ctx, profile, text, "prompt")
            if outcome.blocked:
                raise _blocked(outcome, "prompt")
            if outcome.text != text:
                container[key] = outcome.text
            state.prompt.update(outcome.results)

    async def on_response_body(self, ctx: RequestContext, body: dict[str, Any]) -> None:
        profile = self.profiles.get(ctx.deployment)
        state: _State | None = ctx.state.get(self.name)
        if profile is None or state is None:
            return
        results: dict[Hashable, Results] = {}
        blocked: dict[Hashable, Results] = {}
        if profile.applies("completion"):
            for text in ctx.api.completion_texts(body):
                found = results.setdefault(text.key, {})
                if text.key in blocked or not text.value:
                    continue
                outcome = await self._check(ctx, profile, text.value, "completion")
                found.update(outcome.results)
                if outcome.blocked:
                    blocked[text.key] = found
                else:
                    text.set(outcome.text)
        for key, result in blocked.items():
            ctx.api.block_completion(body, key, result)
        ctx.api.annotate(body, state.prompt, results)

    async def on_response_chunk(
        self, ctx: RequestContext, event: dict[str, Any]
    ) -> list[dict[str, Any]]:
        profile = self.profiles.get(ctx.deployment)
        state: _State | None = ctx.state.get(self.name)
        if profile is None or state is None or not profile.applies("completion"):
            return [event]
        api = ctx.api
        delta = api.stream_delta(event)
        if delta is not None:
            hold = state.holdbacks.get(delta.key)
            if hold is None:
                hold = state.holdbacks[delta.key] = Holdback(self.holdback_chars)
            hold.hold(event, delta.value)
            return await self._release(ctx, profile, hold, final=False)
        if api.is_keepalive(event):
            return [event]  # carries nothing: no reason to release held text early
        out = await self._release_all(ctx, profile, state)
        for text in api.stream_final(event):
            hold = state.holdbacks.get(text.key)
            if hold is not None:
                text.set(hold.released_text)
            elif text.value:
                # A closing event for an output that streamed no deltas: check it whole.
                outcome = await self._check(ctx, profile, text.value, "completion")
                if outcome.blocked:
                    raise _blocked(outcome, "completion")
                text.set(outcome.text)
        out.append(event)
        return out

    async def on_stream_end(self, ctx: RequestContext) -> list[dict[str, Any]]:
        profile = self.profiles.get(ctx.deployment)
        state: _State | None = ctx.state.get(self.name)
        if profile is None or state is None:
            return []
        return await self._release_all(ctx, profile, state)

    async def _release_all(self, ctx: RequestContext, profile: ContentProfile,
                           state: _State) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for hold in state.holdbacks.values():
            if hold.held:
                out += await self._release(ctx, profile, hold, final=True)
        return out

    async def _release(self, ctx: RequestContext, profile: ContentProfile, hold: Holdback,
                       final: bool) -> list[dict[str, Any]]:
        cut, count = hold.cut(final)
        if count == 0:
            return []
        outcome = await self._check(ctx, profile, hold.tail + hold.pending, "completion")
        if outcome.blocked:
            raise _blocked(outcome, "completion")
        offset = len(hold.tail)
        cut, count = hold.widen(cut, count, [f for f in outcome.findings if f.end > offset], offset)
        released, original = hold.take(count)
        local = [type(f)(f.category, f.start - offset, f.end - offset, f.label)
                 for f in outcome.redactions if f.start >= offset and f.end - offset <= cut]
        shown = redact(original, local) if local else original
        hold.remember(original, shown)
        if shown == original:
            return [event for event, _ in released]
        # The redacted text goes out in the first released event; the others carried
        # parts of the same text and are dropped.
        first = released[0][0]
        text = ctx.api.stream_delta(first)
        assert text is not None
        text.set(shown)
        return [first]
