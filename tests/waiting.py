"""Waiting for what a test needs, never for a fixed time.

A test that must see an event (a log line, a metric, a counter, a request the
simulator recorded) before it goes on waits for that event through `wait_for` (in a
thread or synchronous test) or `until` (in a coroutine), with a generous deadline: on a
quiet machine the wait ends as soon as the event happens, on a busy one it takes what
it takes, and only an event that never comes fails the test, with what it was waiting
for in the message.

The deadline is not a claim about speed: it only bounds how long a broken build hangs.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Long enough for a 2-core machine with both cores busy elsewhere.
DEADLINE_S = 30.0
# For a process to start (a gateway imports its packages and may migrate its database
# first): seconds of CPU that a loaded machine can stretch many times over.
START_S = 60.0


class Timeout(AssertionError):
    pass


def _message(what: str, timeout: float, last: Any) -> str:
    return f"waited {timeout:g} s for {what}; the last value seen: {last!r}"


def wait_for(predicate: Callable[[], T], timeout: float = DEADLINE_S, what: str = "",
             interval: float = 0.02) -> T:
    """Call `predicate` until it returns something true; that value. Raises (an
    AssertionError) when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(_message(what or _name(predicate), timeout, value))
        time.sleep(interval)


async def until(predicate: Callable[[], T | Awaitable[T]], timeout: float = DEADLINE_S,  # noqa: ASYNC109
                what: str = "", interval: float = 0.02) -> T:
    """`wait_for` in a coroutine: `predicate` may be a coroutine function too, and the
    event loop goes on serving (an in-process gateway shares it) while this waits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise Timeout(_message(what or _name(predicate), timeout, value))
        await asyncio.sleep(interval)


def _name(predicate: Callable[..., Any]) -> str:
    name = getattr(predicate, "__qualname__", repr(predicate))
    if name.endswith("<lambda>"):
        try:
            return inspect.getsource(predicate).strip()
        except (OSError, TypeError):
            pass
    return name
