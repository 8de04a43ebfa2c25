"""What a request used, once its response is over: the upstream's usage, or, when
the upstream reported none (a stream without usage, a client that left, a broken
stream), the gateway's own count of the prompt and of what was generated."""

from __future__ import annotations

import asyncio
import logging

import orjson

from gateway.apis import Api
from gateway.core.flow import Flow
from gateway.core.tokens import DEFAULT, EncodingUnavailable, Tokenizer, strings
from policies import PolicyChain, Usage
from policies.ratelimit import PricingConfig, Settlements, cost_micros

log = logging.getLogger("gateway.enforcement.accounting")

BYTES_PER_TOKEN = 3  # the fallback when no encoding can be loaded: errs high


def generated_pieces(pieces: list[bytes]) -> list[str]:
    """The escaped JSON-string pieces a relay collected (one per streamed event's text),
    decoded. Each is counted on its own: a model streams its output token by token, and
    the pieces' counts add up to what it generated, where the joined text, tokenized again,
    can merge across their boundaries and come out lower (37 for a GPT-3.5 stream's 40)."""
    out = []
    for piece in pieces:
        try:
            text = orjson.loads(b'"' + piece + b'"')
        except orjson.JSONDecodeError:  # one piece with a bad escape must not lose the others
            text = piece.decode(errors="replace")
        out.append(text if isinstance(text, str) else "")
    return out


# Counted in place up to this many characters (a few tens of milliseconds at most);
# beyond, or before the encoding is loaded, in a thread.
SYNC_CHARS = 100_000


def _fallback(text: str) -> int:
    return -(-len(text.encode()) // BYTES_PER_TOKEN)


async def count(tokenizer: Tokenizer, text: str | list[str], encoding: str) -> int:
    try:
        if isinstance(text, list):
            return await asyncio.to_thread(tokenizer.count_all, text, encoding)
        return await asyncio.to_thread(tokenizer.count, text, encoding)
    except EncodingUnavailable as exc:
        log.warning("token count estimated from size: %s", exc)
        return _fallback("".join(text) if isinstance(text, list) else text)


# The bytes of a stream's text pieces held before they are counted and let go: a stream
# without usage of any length then holds this much of its text, never all of it. Below
# it (nearly every answer), nothing is counted unless the upstream reports no usage.
HOLD_BYTES = 1 << 20


# While a count runs, a stream may hold this much more before it waits for the count:
# an upstream that generates faster than the gateway counts is slowed to the count's
# pace rather than held in memory.
HOLD_MAX_BYTES = 4 * HOLD_BYTES


async def count_held(tokenizer: Tokenizer, flow: Flow, encoding: str) -> None:
    """The pieces a stream holds, counted in a thread and let go; one count at a time
    (while one runs, the pieces wait for the next, up to HOLD_MAX_BYTES). Pieces count
    on their own, so the counts add up to the count of them all."""
    running = flow.counting
    if running is not None and not running.done():
        if flow.output_size < HOLD_MAX_BYTES:
            return
        await asyncio.shield(running)
    pieces, flow.output, flow.output_size = flow.output, [], 0
    # The count before this one is over (returned above, or waited for): one at a time.
    flow.counting = asyncio.get_running_loop().create_task(
        _count_pieces(tokenizer, flow, pieces, encoding))


async def _count_pieces(tokenizer: Tokenizer, flow: Flow, pieces: list[bytes],
                        encoding: str) -> None:
    try:
        counted = await asyncio.to_thread(
            lambda: tokenizer.count_all(generated_pieces(pieces), encoding))
    except Exception as exc:  # a count that fails must not lose the settlement
        if not isinstance(exc, EncodingUnavailable):  # its type only: never the text
            log.warning("token count estimated from size: %s", type(exc).__name__)
        counted = sum(_fallback(text) for text in generated_pieces(pieces))
    flow.output_counted += counted


def _needs_count(api: Api, flow: Flow) -> bool:
    return flow.usage is None and api.generates and bool(flow.backend) and not flow.pending \
        and bool(flow.output or flow.answer_texts or flow.disconnected or flow.counting)


def _record(flow: Flow, price: PricingConfig | None) -> None:
    if flow.usage is not None:
        flow.cost_micros = cost_micros(flow.usage, price)


async def finish(tokenizer: Tokenizer, background: Settlements, api: Api, flow: Flow,
                 chain: PolicyChain, price: PricingConfig | None = None,
                 encoding: str = DEFAULT) -> None:
    """Once the response is over: the usage (counted if the upstream reported none), then
    the policies' on_response (settlement). Neither may be lost to a client that hangs
    up meanwhile: a count that has to wait (a thread) runs in a task of the app's, which
    this awaits shielded, so that the handler's cancellation does not cancel it."""
    if _needs_count(api, flow):
        prompt = strings(api.prompt_parts(flow.body))
        output = [*flow.answer_texts, *generated_pieces(flow.output)]
        if flow.counting is None and tokenizer.loaded(encoding) \
                and len(prompt) + sum(map(len, output)) <= SYNC_CHARS:
            flow.usage = Usage(tokenizer.count(prompt, encoding) + api.prompt_framing(flow.body),
                               tokenizer.count_all(output, encoding), estimated=True)
        else:
            flow.finishing = background.start(_count_and_settle(tokenizer, api, flow, chain,
                                                                prompt, output, price, encoding))
            await asyncio.shield(flow.finishing)
            return
    _record(flow, price)
    if chain.looks_at_responses:
        await chain.on_response(flow)


async def _count_and_settle(tokenizer: Tokenizer, api: Api, flow: Flow, chain: PolicyChain,
                            prompt: str, output: list[str], price: PricingConfig | None,
                            encoding: str) -> None:
    if flow.counting is not None:  # what was counted while the answer streamed
        await flow.counting
    flow.usage = Usage(await count(tokenizer, prompt, encoding) + api.prompt_framing(flow.body),
                       flow.output_counted + await count(tokenizer, output, encoding),
                       estimated=True)
    _record(flow, price)
    if chain.looks_at_responses:
        await chain.on_response(flow)
