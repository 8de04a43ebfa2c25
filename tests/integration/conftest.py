"""Fixtures the integration tests share beyond tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.conftest import serve_in_thread
from tests.integration.test_telemetry import Receiver


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A local OTLP/HTTP receiver of traces and metrics, and its URL."""
    r = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", r.traces)
    app.router.add_post("/v1/metrics", r.metrics_)
    with serve_in_thread(app) as url:
        yield r, url
