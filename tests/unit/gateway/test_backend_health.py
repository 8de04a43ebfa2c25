from __future__ import annotations

from gateway.upstream.health import BackendHealth


def test_consecutive_failures_open_then_half_open_probe_closes() -> None:
    h = BackendHealth(failures_to_open=3, open_seconds=10)
    for t in (1.0, 2.0):
        h.failed(t)
    assert h.available(2.5)
    h.failed(3.0)
    assert not h.available(3.5) and not h.available(12.9)
    assert h.available(13.0)
    h.picked(13.0)  # the one probe
    assert not h.available(13.1)  # nobody else while it runs
    h.succeeded(13.2)
    assert h.available(13.3) and h.failures == 0


def test_a_failed_probe_reopens() -> None:
    h = BackendHealth(failures_to_open=1, open_seconds=5)
    h.failed(0.0)
    h.picked(5.0)
    h.failed(5.1)
    assert not h.available(6.0) and h.available(10.2)


def test_failure_ratio_over_a_window() -> None:
    h = BackendHealth(failures_to_open=100, open_seconds=5, failure_ratio=0.5,
                      window_seconds=10, min_requests=4)
    h.succeeded(0.0)
    h.failed(1.0)
    h.succeeded(2.0)
    assert h.available(2.5)  # 1 of 3: too few calls to judge
    h.failed(3.0)  # 2 of 4 failed
    assert not h.available(3.5)


def test_old_outcomes_leave_the_window() -> None:
    h = BackendHealth(failures_to_open=100, failure_ratio=0.5, window_seconds=10, min_requests=4)
    for t in (0.0, 1.0, 2.0):
        h.failed(t)
    for t in (20.0, 21.0, 22.0):
        h.succeeded(t)
    h.failed(23.0)  # 1 of 4 in the window
    assert h.available(23.5)
