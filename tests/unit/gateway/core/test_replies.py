"""Request ids: 32 hex digits, never repeated, and not shared with a forked worker."""

from __future__ import annotations

import os
import re

from gateway.core.replies import request_id


def test_ids_are_128_random_bits_and_never_repeat() -> None:
    ids = [request_id() for _ in range(5_000)]  # many batches of the pool
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_worker_draws_ids_of_its_own() -> None:
    request_id()  # the parent's pool now holds ids a child must not hand out again
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the worker: its first ids, to the parent
        os.close(read)
        os.write(write, "".join(request_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = pipe.read()
    os.waitpid(child, 0)
    ours = "".join(request_id() for _ in range(10))
    assert len(theirs) == 320
    assert not {theirs[i:i + 32] for i in range(0, 320, 32)} & {ours[i:i + 32] for i in range(0, 320, 32)}
