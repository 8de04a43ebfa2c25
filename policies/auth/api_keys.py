"""API keys are stored as SHA-256 digests; `hash_key` makes the digest a config stores."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from policies.errors import Unauthenticated

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RuntimeKey:
    """A key issued at runtime (the admin API): its digest, owner and expiry."""

    digest: str
    consumer: str
    expires_at: float | None = None  # epoch seconds


class KeyRing:
    """Maps key digests to consumer names; a runtime key may expire."""

    def __init__(self, digests: dict[str, str], expiring: Sequence[RuntimeKey] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self._by_digest = dict(digests)
        self._expires: dict[str, float] = {}
        for key in expiring:
            self._by_digest[key.digest] = key.consumer
            if key.expires_at is not None:
                self._expires[key.digest] = key.expires_at
        self._clock = clock

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, key: str) -> str | None:
        """The owner of `key`; Unauthenticated if it has expired."""
        # Keys are compared by their SHA-256 digest, never as plain text: the
        # time a lookup takes depends only on the digest, so it tells an attacker
        # nothing about how close a guessed key came (a preimage would be needed).
        digest = hash_key(key)
        owner = self._by_digest.get(digest)
        expires = self._expires.get(digest)
        if owner is not None and expires is not None and self._clock() >= expires:
            raise Unauthenticated("Access denied: this key has expired. Ask for a new one.",
                                  code="expired_api_key")
        return owner
