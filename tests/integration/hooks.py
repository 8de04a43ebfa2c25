"""Custom content-filter hooks used by the tests (loaded by import path)."""

from __future__ import annotations

import asyncio

from policies.content import Verdict


def no_bananas(text: str, stage: str) -> Verdict:
    at = text.lower().find("banana")
    if at < 0:
        return Verdict(False)
    return Verdict(True, category="fruit", spans=((at, at + 6),))


async def broken(text: str, stage: str) -> bool:
    raise RuntimeError("the hook's own backend is down")


async def slow(text: str, stage: str) -> bool:
    await asyncio.sleep(10)
    return False


async def sluggish(text: str, stage: str) -> bool:
    """A filter that takes its time (0.3 s a text) and finds nothing."""
    await asyncio.sleep(0.3)
    return False
