"""What a request used, once its response is over: the upstream's usage, or, when
the upstream reported none (a stream without usage, a client that left, a broken
stream), the gateway's own count of the prompt and of what was generated."""

from __future__ import annotations

import asyncio
import logging

import orjson

from gateway.apis import Api
from gateway.core.flow import Exchange
from gateway.core.tokens import EncodingUnavailable, Tokenizer, strings
from policies import PolicyChain, RequestContext, Usage
from policies.ratelimit import PricingConfig, Settlements, cost_micros

log = logging.getLogger("gateway.enforcement.accounting")

BYTES_PER_TOKEN = 3  # the fallback when no encoding can be loaded: errs high


def generated_text(pieces: list[bytes]) -> str:
    """The escaped JSON-string pieces a relay collected, as one text."""
    try:
        text = orjson.loads(b'"' + b"".join(pieces) + b'"')
    except orjson.JSONDecodeError:
        # One piece with a bad escape must not lose the others.
        parts = []
        for piece in pieces:
            try:
                parts.append(orjson.loads(b'"' + piece + b'"'))
            except orjson.JSONDecodeError:
                parts.append(piece.decode(errors="replace"))
        text = "".join(parts)
    return text if isinstance(text, str) else ""


# Counted in place up to this many characters (a few tens of milliseconds at most);
# beyond, or before the encoding is loaded, in a thread.
SYNC_CHARS = 100_000


def _fallback(text: str) -> int:
    return -(-len(text.encode()) // BYTES_PER_TOKEN)


async def count(tokenizer: Tokenizer, text: str) -> int:
    try:
        return await asyncio.to_thread(tokenizer.count, text)
    except EncodingUnavailable as exc:
        log.warning("token count estimated from size: %s", exc)
        return _fallback(text)


def _needs_count(api: Api, ctx: RequestContext, ex: Exchange) -> bool:
    return ctx.usage is None and api.generates and bool(ex.backend) and not ctx.pending \
        and bool(ex.output or ctx.disconnected)


def _record(ctx: RequestContext, ex: Exchange, price: PricingConfig | None) -> None:
    usage = ctx.usage
    if usage is not None:
        ex.prompt_tokens, ex.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        ex.cached_tokens, ex.reasoning_tokens = usage.cached_tokens, usage.reasoning_tokens
        ex.cost_micros = cost_micros(usage, price)


async def finish(tokenizer: Tokenizer, background: Settlements, api: Api, ctx: RequestContext,
                 ex: Exchange, chain: PolicyChain, price: PricingConfig | None = None) -> None:
    """Once the response is over: the usage (counted if the upstream reported none), then
    the policies' on_response (settlement). Neither may be lost to a client that hangs
    up meanwhile: a count that has to wait (a thread) runs in a task of the app's, which
    this awaits shielded, so that the handler's cancellation does not cancel it."""
    if _needs_count(api, ctx, ex):
        prompt, output = strings(api.prompt_parts(ctx.body)), generated_text(ex.output)
        if tokenizer.loaded and len(prompt) + len(output) <= SYNC_CHARS:
            ctx.usage = Usage(tokenizer.count(prompt) + api.prompt_framing(ctx.body),
                              tokenizer.count(output), estimated=True)
        else:
            ex.finishing = background.start(_count_and_settle(tokenizer, api, ctx, ex, chain,
                                                              prompt, output, price))
            await asyncio.shield(ex.finishing)
            return
    _record(ctx, ex, price)
    if chain.looks_at_responses:
        await chain.on_response(ctx)


async def _count_and_settle(tokenizer: Tokenizer, api: Api, ctx: RequestContext, ex: Exchange,
                            chain: PolicyChain, prompt: str, output: str,
                            price: PricingConfig | None) -> None:
    ctx.usage = Usage(await count(tokenizer, prompt) + api.prompt_framing(ctx.body),
                      await count(tokenizer, output), estimated=True)
    _record(ctx, ex, price)
    if chain.looks_at_responses:
        await chain.on_response(ctx)
