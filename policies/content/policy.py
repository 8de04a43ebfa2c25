"""Content filtering as a policy: prompts before the upstream call, completions in
whole answers and in streams, where text reaches the client only after the
filters have seen it, through a bounded hold-back window."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.base import Policy, RequestContext
from policies.content.profile import ContentProfile, Outcome, redact
from policies.errors import ContentBlocked

# Released text kept to scan together with what is still held, so that a match
# spanning the cut between two releases is still seen.
OVERLAP_CHARS = 256


@dataclass
class ContentStats:
    """Read by the gateway's metrics at scrape time."""

    actions: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    seconds: float = 0.0
    checks: int = 0


def _prompt_slots(operation: str, body: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(container, key) of every prompt text in a request body."""
    slots: list[tuple[Any, Any]] = []
    if operation == "chat/completions":
        for message in body.get("messages") or []:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                slots.append((message, "content"))
            elif isinstance(content, list):
                slots += [(part, "text") for part in content
                          if isinstance(part, dict) and isinstance(part.get("text"), str)]
        return slots
    key = "prompt" if operation == "completions" else "input"
    value = body.get(key)
    if isinstance(value, str):
        slots.append((body, key))
    elif isinstance(value, list):
        slots += [(value, i) for i, v in enumerate(value) if isinstance(v, str)]
    return slots


def _blocked(outcome: Outcome, stage: str) -> ContentBlocked:
    which = ", ".join(sorted(outcome.results))
    return ContentBlocked(
        f"The {stage} was filtered due to the content management policy ({which}). "
        "Please modify it and retry.", result=outcome.results)


class _Holdback:
    """The streamed text of one choice that the client has not seen yet."""

    def __init__(self) -> None:
        self.held: list[tuple[dict[str, Any], str]] = []  # (event, its content)
        self.chars = 0  # the length of the held text
        self.tail = ""  # recently released text, scanned again with the next check

    def hold(self, event: dict[str, Any], text: str) -> None:
        self.held.append((event, text))
        self.chars += len(text)

    @property
    def pending(self) -> str:
        return "".join(text for _, text in self.held)


def _delta_text(event: dict[str, Any]) -> tuple[int, str, str] | None:
    """(choice index, field, text) of an event that carries generated text."""
    choices = event.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if choice.get("finish_reason"):
        return None
    delta = choice.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("content"), str) and delta["content"]:
        return int(choice.get("index", 0)), "content", delta["content"]
    if isinstance(choice.get("text"), str) and choice["text"]:
        return int(choice.get("index", 0)), "text", choice["text"]
    return None


def _set_text(event: dict[str, Any], fieldname: str, text: str) -> None:
    choice = event["choices"][0]
    if fieldname == "content":
        choice["delta"]["content"] = text
    else:
        choice["text"] = text


class ContentFilterPolicy(Policy):
    name = "content"

    def __init__(self, profiles: Mapping[str, ContentProfile], holdback_chars: int = 64,
                 stats: ContentStats | None = None) -> None:
        self.profiles = dict(profiles)  # deployment -> profile
        self.holdback_chars = holdback_chars
        self.stats = stats or ContentStats()

    async def _check(self, ctx: RequestContext, profile: ContentProfile, text: str,
                     stage: str) -> Outcome:
        started = time.perf_counter()
        try:
            outcome = await profile.check(text, stage)
        finally:
            self.stats.seconds += time.perf_counter() - started
            self.stats.checks += 1
        for action in outcome.actions:
            self.stats.actions[(ctx.deployment, stage, action)] += 1
        return outcome

    async def on_request(self, ctx: RequestContext) -> None:
        profile = self.profiles.get(ctx.deployment)
        if profile is None:
            return
        results: dict[str, dict[str, object]] = {}
        if profile.applies("prompt"):
            for container, key in _prompt_slots(ctx.operation, ctx.body):
                outcome = await self._check(ctx, profile, container[key], "prompt")
                if outcome.blocked:
                    raise _blocked(outcome, "prompt")
                container[key] = outcome.text
                results.update(outcome.results)
        ctx.state[self.name] = {"prompt": results, "holdback": {}}

    async def on_response_body(self, ctx: RequestContext, body: dict[str, Any]) -> None:
        profile = self.profiles.get(ctx.deployment)
        state = ctx.state.get(self.name)
        if profile is None or state is None or not isinstance(body.get("choices"), list):
            return
        for choice in body["choices"]:
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            holder, key = (message, "content") if isinstance(message, dict) else (choice, "text")
            text = holder.get(key)
            results: dict[str, object] = {}
            if isinstance(text, str) and text and profile.applies("completion"):
                outcome = await self._check(ctx, profile, text, "completion")
                results = dict(outcome.results)
                if outcome.blocked:
                    holder[key] = ""
                    choice["finish_reason"] = "content_filter"
                else:
                    holder[key] = outcome.text
            choice["content_filter_results"] = results
        body["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": state["prompt"]}]

    async def on_response_chunk(
        self, ctx: RequestContext, event: dict[str, Any]
    ) -> list[dict[str, Any]]:
        profile = self.profiles.get(ctx.deployment)
        state = ctx.state.get(self.name)
        if profile is None or state is None or not profile.applies("completion"):
            return [event]
        found = _delta_text(event)
        if found is None:
            # Role, finish and usage events: everything held goes first, fully checked.
            return [*await self._release_all(ctx, profile, state), event]
        index, _, text = found
        hold = state["holdback"].setdefault(index, _Holdback())
        hold.hold(event, text)
        return await self._release(ctx, profile, hold, final=False)

    async def on_stream_end(self, ctx: RequestContext) -> list[dict[str, Any]]:
        profile = self.profiles.get(ctx.deployment)
        state = ctx.state.get(self.name)
        if profile is None or state is None:
            return []
        return await self._release_all(ctx, profile, state)

    async def _release_all(self, ctx: RequestContext, profile: ContentProfile,
                           state: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for hold in state["holdback"].values():
            out += await self._release(ctx, profile, hold, final=True)
        return out

    async def _release(self, ctx: RequestContext, profile: ContentProfile, hold: _Holdback,
                       final: bool) -> list[dict[str, Any]]:
        # Release whole events from the front while the window stays covered.
        cut, count = 0, 0
        if final:
            cut, count = hold.chars, len(hold.held)
        else:
            # Cut only between words, so that no match (an e-mail address, say) is
            # released half-seen, and keep at least holdback_chars back.
            candidate = 0
            for i, (_, text) in enumerate(hold.held):
                candidate += len(text)
                if hold.chars - candidate < self.holdback_chars:
                    break
                after = hold.held[i + 1][1] if i + 1 < len(hold.held) else ""
                if text[-1:].isspace() or after[:1].isspace():
                    cut, count = candidate, i + 1
        if count == 0:
            return []
        scanned = hold.tail + hold.pending
        outcome = await self._check(ctx, profile, scanned, "completion")
        if outcome.blocked:
            raise _blocked(outcome, "completion")
        offset = len(hold.tail)
        findings = [f for f in outcome.findings if f.end > offset]
        for f in findings:
            if f.start < offset + cut < f.end:  # a match across the cut: release it whole
                while count < len(hold.held) and cut < f.end - offset:
                    cut += len(hold.held[count][1])
                    count += 1
        released = hold.held[:count]
        del hold.held[:count]
        original = "".join(text for _, text in released)
        hold.chars -= len(original)
        local = [type(f)(f.category, f.start - offset, f.end - offset, f.label)
                 for f in findings if f.start >= offset and f.end - offset <= cut]
        text = redact(original, local) if local else original
        hold.tail = (hold.tail + original)[-OVERLAP_CHARS:]
        if text == original:
            return [event for event, _ in released]
        first, fieldname = released[0][0], _delta_text(released[0][0])
        assert fieldname is not None
        _set_text(first, fieldname[1], text)
        return [first]
