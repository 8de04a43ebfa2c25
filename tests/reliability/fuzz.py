"""Fuzzing the inbound API. schemathesis generates requests from the gateway's own
OpenAPI document (`/openapi.json`), both what the schema allows and what it does
not; hypothesis posts arbitrary JSON and bytes, with and without credentials and
odd headers, to every route. Every answer is classified: the gateway may refuse
anything, but never with a 5xx of its own (an upstream-caused 502/503/504 is
counted apart), every error is JSON, and it never closes or resets a connection
without an answer (counted as `dropped`, apart from every status).

    python -m tests.reliability.fuzz --examples 300      # figures for docs/reliability.md

The CI suite runs a smoke of this (tests/reliability/test_reliability_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from gateway.apis import MODEL_ROUTES

UPSTREAM_CODES = frozenset({"upstream_error", "upstream_timeout", "no_healthy_backend",
                            "upstream_auth_failed"})


@dataclass
class Figures:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    upstream_5xx: int = 0
    gateway_5xx: list[str] = field(default_factory=list)  # what was sent, for each
    not_json: list[str] = field(default_factory=list)
    # Requests that got no answer at all: the connection was closed or reset.
    dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def record_dropped(self, what: str, error: BaseException) -> None:
        self.requests += 1
        self.dropped.append(f"{type(error).__name__} {what}")

    def record(self, what: str, status: int, content_type: str, body: bytes) -> None:
        self.requests += 1
        self.statuses[status] += 1
        if status >= 400 and not content_type.startswith("application/json"):
            self.not_json.append(f"{status} {what}")
        if status < 500:
            return
        code = None
        try:
            parsed = json.loads(body)
            error = parsed.get("error") if isinstance(parsed, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            if isinstance(error, dict) and code is None:  # Anthropic's shape
                code = "upstream_error" if status in (502, 503, 504) else error.get("type")
        except ValueError:
            pass
        if status in (502, 503, 504) and code in UPSTREAM_CODES:
            self.upstream_5xx += 1
        else:
            self.gateway_5xx.append(f"{status} {code} {what}")

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "seconds": round(self.seconds, 1),
                "statuses": dict(sorted(self.statuses.items())), "upstream_5xx": self.upstream_5xx,
                "gateway_5xx": len(self.gateway_5xx), "errors_not_json": len(self.not_json),
                "dropped_connections": len(self.dropped),
                "examples": (self.gateway_5xx + self.not_json + self.dropped)[:10]}


def _content_type(headers: Any) -> str:
    """schemathesis' responses keep headers as lists under lower-case names."""
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value[0] if isinstance(value, list) else str(value)
    return ""


_FUZZ = settings(deadline=None, database=None, derandomize=True,
                 suppress_health_check=list(HealthCheck))


def schema_fuzz(url: str, key: str, examples: int, figures: Figures) -> None:
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    session = requests.Session()
    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _operation_fuzz(result.ok(), mode, url, key, examples, figures, session)


def _operation_fuzz(operation: Any, mode: GenerationMode, url: str, key: str, examples: int,
                    figures: Figures, session: requests.Session) -> None:
    @settings(_FUZZ, max_examples=examples)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        what = f"{case.method} {case.formatted_path} {mode.value}"
        try:
            response = case.call(base_url=url, session=session, headers={"api-key": key}, timeout=30)
        except requests.ConnectionError as error:
            figures.record_dropped(what, error)
            return
        figures.record(what, response.status_code,
                       _content_type(response.headers), response.content)

    run()


_HEADERS = st.dictionaries(
    st.sampled_from(["Content-Type", "Content-Encoding", "Expect", "extra-parameters",
                     "x-ms-model-mesh-model-name", "Authorization", "anthropic-version",
                     "x-ms-client-request-id", "Accept"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40), max_size=4)
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=30),
                     lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
                         st.sampled_from(["model", "messages", "input", "stream", "max_tokens",
                                          "prompt", "tools", "system", "n", "x"]) | st.text(max_size=8),
                         inner, max_size=5), max_leaves=30)


def raw_fuzz(url: str, key: str, examples: int, figures: Figures) -> None:
    session = requests.Session()
    paths = sorted({r.path.replace("{deployment}", "chat") for r in MODEL_ROUTES})

    @settings(_FUZZ, max_examples=examples * len(paths))
    @given(path=st.sampled_from(paths), body=_JSON | st.binary(max_size=300), headers=_HEADERS,
           keyed=st.booleans())
    def run(path: str, body: Any, headers: dict[str, str], keyed: bool) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {**headers, **({"api-key": key} if keyed else {})}
        try:
            response = session.post(url + path, data=data, headers=sent, timeout=30)
        except requests.exceptions.InvalidHeader:
            return  # refused by the client library itself: nothing was sent
        except requests.ConnectionError as error:
            figures.record_dropped(f"POST {path} {data[:80]!r} {headers}", error)
            return
        figures.record(f"POST {path} {data[:80]!r} {headers}", response.status_code,
                       response.headers.get("Content-Type", ""), response.content)

    run()


def fuzz(url: str, key: str, examples: int) -> Figures:
    figures = Figures()
    started = time.monotonic()
    schema_fuzz(url, key, examples, figures)
    raw_fuzz(url, key, examples, figures)
    figures.seconds = time.monotonic() - started
    return figures


def main() -> None:
    import os

    from gateway.simulator import SimulatorSettings
    from tests.conftest import KEY_B, OPENAI_KEY, UPSTREAM_KEY, Stack
    from tests.reliability.stacks import everything

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=300, help="per operation and mode")
    args = parser.parse_args()
    os.environ.setdefault("TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    os.environ.setdefault("TEST_OPENAI_KEY", OPENAI_KEY)
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MODEL_GATEWAY_DATABASE__URL"] = f"sqlite:///{folder}/fuzz.db"
        stack = Stack(everything, SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY))).start()
        try:
            print(json.dumps(fuzz(stack.url, KEY_B, args.examples).summary(), indent=2))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
