"""CI runs the large-answer measurement on a few MB to prove it works; 100 MB is by hand."""

from __future__ import annotations

import re
import subprocess
import sys


def test_large_answer_smoke() -> None:
    result = subprocess.run([sys.executable, "-m", "tests.benchmarks.large_answer", "--mb", "3"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"this tree: (\d+) MB streamed .* peak (\d+) MB", result.stdout)
    assert found and int(found.group(1)) >= 3 and int(found.group(2)) > 0, result.stdout
