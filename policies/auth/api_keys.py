"""API keys are stored as SHA-256 digests; `hash_key` makes the digest a config stores."""

from __future__ import annotations

import hashlib
import re

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """Maps key digests to consumer names."""

    def __init__(self, digests: dict[str, str]) -> None:
        self._by_digest = dict(digests)

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, key: str) -> str | None:
        # Keys are compared by their SHA-256 digest, never as plain text: the
        # time a lookup takes depends only on the digest, so it tells an attacker
        # nothing about how close a guessed key came (a preimage would be needed).
        return self._by_digest.get(hash_key(key))
