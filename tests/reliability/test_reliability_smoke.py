"""A short run of each reliability suite in CI; the long runs are by hand and their
figures are in docs/reliability.md."""

from __future__ import annotations

from typing import Any

from tests.conftest import KEY_B, Stack
from tests.reliability.fuzz import Figures, fuzz, raw_fuzz
from tests.reliability.stacks import everything


def test_fuzz_smoke(make_stack: Any) -> None:
    stack: Stack = make_stack(everything)
    figures = fuzz(stack.url, KEY_B, examples=4)
    summary = figures.summary()
    assert figures.requests > 250, summary
    assert figures.gateway_5xx == [], summary
    assert figures.not_json == [], summary
    assert figures.dropped == [], summary


def test_fuzz_counts_a_dropped_connection_apart_from_every_status() -> None:
    """A server that resets every connection answers nothing: the fuzz says so, rather
    than counting what it never got as an answer. (A raw socket, not an HTTP server:
    aiohttp would answer some requests itself, an odd Expect with 417, before any
    handler could reset them.)"""
    import socket
    import struct
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopped = threading.Event()

    def reset_every_connection() -> None:
        while not stopped.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            # Linger 0: close() sends a reset, not an orderly end.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()

    thread = threading.Thread(target=reset_every_connection, daemon=True)
    thread.start()
    figures = Figures()
    try:
        raw_fuzz(f"http://127.0.0.1:{listener.getsockname()[1]}", KEY_B, 1, figures)
    finally:
        stopped.set()
        thread.join()
        listener.close()
    assert figures.requests > 0
    assert len(figures.dropped) == figures.requests and not figures.statuses
    assert figures.summary()["dropped_connections"] == figures.requests


async def test_fault_matrix_smoke(monkeypatch: Any) -> None:
    import os

    from tests.reliability.faults import matrix

    for name in ("TEST_UPSTREAM_KEY", "TEST_OPENAI_KEY"):
        monkeypatch.delenv(name, raising=False)
    rows = {row.fault: row for row in await matrix(requests=6)}
    # The upstream keys it needed are gone again: no later test sees them by chance.
    assert "TEST_UPSTREAM_KEY" not in os.environ and "TEST_OPENAI_KEY" not in os.environ
    for row in rows.values():
        assert row.lost == 0 and row.misaccounted_tokens <= 1, row
    # Each row met its own fault: these end as answers, not as an open breaker's 503.
    for fault in ("none", "no-usage", "no-content-type", "redis down and back"):
        statuses = rows[fault].statuses
        assert set(statuses) == {"200", "200 stream"} and sum(statuses.values()) == 6, rows[fault]
    assert set(rows["500"].statuses) == {"500"} and set(rows["429"].statuses) == {"429"}


def test_soak_smoke(tmp_path: Any) -> None:
    from tests.reliability.soak import soak

    figures = soak(requests=3000, aborts=300, folder=tmp_path)
    before, after = figures["before"], figures["after"]
    assert figures["errors"] == 0, figures
    assert after["tasks"] <= before["tasks"] + 2, figures
    assert after["open_fds"] <= before["open_fds"] + 5, figures
    assert after["rss_mb"] < before["rss_mb"] * 1.25, figures
