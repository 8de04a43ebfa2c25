"""One JSON line per request. It is built only from `Exchange` fields, which hold
names, numbers and codes: no key, token, header value or prompt text can reach it."""

from __future__ import annotations

import logging
import sys
import time

import orjson

from gateway.exchange import Exchange

log = logging.getLogger("gateway.access")


def setup(stream: object = None) -> None:
    """Access lines go to stdout as they are; the rest of logging is left alone."""
    if log.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stdout)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def emit(ex: Exchange, elapsed: float) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    line = {
        "time": time.time(),
        "request_id": ex.request_id,
        "consumer": ex.consumer,
        "identity": ex.identity or None,
        "deployment": ex.deployment,
        "backend": ex.backend,
        "route": ex.route,
        "status": ex.status,
        "latency_ms": round(elapsed * 1000, 3),
        "ttft_ms": None if ex.ttft is None else round(ex.ttft * 1000, 3),
        "prompt_tokens": ex.prompt_tokens,
        "completion_tokens": ex.completion_tokens,
        "stream": ex.stream,
        "error": ex.error_code or None,
    }
    log.info(orjson.dumps(line).decode())
