"""A short run of each reliability suite in CI; the long runs are by hand and their
figures are in docs/reliability.md."""

from __future__ import annotations

from typing import Any

from tests.conftest import KEY_B, Stack
from tests.reliability.fuzz import fuzz
from tests.reliability.stacks import everything


def test_fuzz_smoke(make_stack: Any) -> None:
    stack: Stack = make_stack(everything)
    figures = fuzz(stack.url, KEY_B, examples=8)
    summary = figures.summary()
    assert figures.requests > 500, summary
    assert figures.gateway_5xx == [], summary
    assert figures.not_json == [], summary
