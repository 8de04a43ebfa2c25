"""What a request used, once its response is over: the upstream's usage, or, when
the upstream reported none (a stream without usage, a client that left, a broken
stream), the gateway's own count of the prompt and of what was generated."""

from __future__ import annotations

import logging

import orjson

from gateway.apis import Api
from gateway.exchange import Exchange
from gateway.tokens import EncodingUnavailable, Tokenizer, strings
from policies import RequestContext, Usage

log = logging.getLogger("gateway.accounting")

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


async def count(tokenizer: Tokenizer, text: str) -> int:
    try:
        return await tokenizer.acount(text)
    except EncodingUnavailable as exc:
        log.warning("token count estimated from size: %s", exc)
        return -(-len(text.encode()) // BYTES_PER_TOKEN)


async def account(tokenizer: Tokenizer, api: Api, ctx: RequestContext, ex: Exchange) -> None:
    if ctx.usage is None and api.generates and ex.backend and not ctx.pending \
            and (ex.output or ctx.disconnected):
        prompt = await count(tokenizer, strings(api.prompt_parts(ctx.body)))
        completion = await count(tokenizer, generated_text(ex.output))
        ctx.usage = Usage(prompt + api.prompt_framing(ctx.body), completion, estimated=True)
    if ctx.usage is not None:
        ex.prompt_tokens, ex.completion_tokens = ctx.usage.prompt_tokens, ctx.usage.completion_tokens
