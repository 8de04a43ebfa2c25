"""CI runs the console's measurements at a small size to prove they still work (no
figure is judged); the full runs are by hand (docs/console.md)."""

from __future__ import annotations

import subprocess
import sys


def test_usage_benchmark_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.console_usage", "--consumers", "4",
         "--deployments", "2", "--days", "40", "--repeat", "1"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "month" in result.stdout and "median" in result.stdout
    assert "loaded 7,680 hourly rows" in result.stdout


def test_rss_measurement_smoke() -> None:
    result = subprocess.run([sys.executable, "-m", "tests.benchmarks.console_rss", "--runs", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "console enabled, idle" in result.stdout and "after one visit" in result.stdout
