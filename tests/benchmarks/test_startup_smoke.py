"""CI proves the start-up counter works (one start of each kind); the A/B is by hand."""

from __future__ import annotations

import re

import pytest

from tests.benchmarks.startup import main


def test_startup_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--starts", "1"]) == 0
    out = capsys.readouterr().out
    found = dict(re.findall(r"this tree, (empty database|schema at head): ([\d.]+) s", out))
    assert set(found) == {"empty database", "schema at head"}, out
    assert all(float(s) > 0 for s in found.values()), out
