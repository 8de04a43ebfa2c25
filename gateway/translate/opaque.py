"""The gateway's own opaque state inside Responses items (`encrypted_content`): what a
translated answer hands the client so that the client hands it back unchanged in a
later request. Two kinds: a Claude reasoning block (a `thinking` block with its
`signature`, or a `redacted_thinking` block), which Claude must get back exactly in a
tool loop; and a compaction summary (`/responses/compact` done by the gateway).

It is encoded, not encrypted: it holds only what the client's own conversation already
holds (Claude's thinking is also in the item's summary), and a client that forges it
can do no more than it could by writing the same text in a message. The marker keeps
it apart from an upstream's real encrypted content (OpenAI's are Fernet tokens,
`gAAAA...`), which no translated backend can read."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

MARKER = "mgw1"
CLAUDE = "claude"  # a Messages reasoning block
SUMMARY = "summary"  # a compaction summary


def encode(kind: str, value: dict[str, Any]) -> str:
    return f"{MARKER}.{kind}." + base64.urlsafe_b64encode(orjson.dumps(value)).decode()


def is_ours(text: Any) -> bool:
    return isinstance(text, str) and text.startswith(MARKER + ".")


def decode(kind: str, text: Any) -> dict[str, Any] | None:
    """The value of one of ours of this kind; None for anything else (another kind, an
    upstream's encrypted content, a damaged string)."""
    prefix = f"{MARKER}.{kind}."
    if not isinstance(text, str) or not text.startswith(prefix):
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(text[len(prefix):]))
    except (binascii.Error, ValueError):
        return None
    return value if isinstance(value, dict) else None
