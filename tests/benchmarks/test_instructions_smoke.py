"""CI proves the instruction counter works (a few requests); the real A/B is by hand."""

from __future__ import annotations

import re
import subprocess
import sys


def test_instructions_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.instructions", "--requests", "10",
         "--warm-up", "10", "--ab", "HEAD"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = [float(c.replace(",", "")) for c in re.findall(r"([\d,.]+) k", result.stdout)]
    # This tree and HEAD (the same gateway, or nearly): both counted, neither empty.
    assert len(counts) == 2 and all(c > 100 for c in counts), result.stdout
    assert "this tree" in result.stdout and "HEAD:" in result.stdout
