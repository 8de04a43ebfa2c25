"""CI runs the benchmark for a few seconds to prove it still works; the full run is by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_benchmark_smoke(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench", "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads((tmp_path / "latest.json").read_text())["rows"]
    targets = {(r["scenario"], r["target"]) for r in rows}
    assert ("chat", "simulator (direct)") in targets and ("chat", "gateway") in targets
    # The growth with the body: a 64 KB agent turn through the gateway, its CPU counted.
    sized = [r for r in rows if r["scenario"] == "chat, 64 KB body" and r["target"] == "gateway"]
    assert sized and sized[0]["gateway_cpu_us_per_request"] > 0
    assert any(r["scenario"] == "stream 20 chunks" and r["target"] == "gateway" for r in rows)
    for scenario in ("responses stream 20 chunks", "anthropic stream 20 chunks"):
        assert {("simulator (direct)"), "gateway"} <= {r["target"] for r in rows
                                                      if r["scenario"] == scenario}
    assert any(r["scenario"].startswith("filter worst case") for r in rows)
    for r in rows:
        assert r["errors"] == 0 and r["requests"] > 0 and r["p50_ms"] > 0, r
        # (A native row of a translation pair is the floor its translated row is compared with.)
        if r["target"] == "gateway" and r["scenario"] != "slow streams (5 x 100 ms)" \
                and not r["scenario"].endswith(", native"):
            assert r["added_p50_ms"] is not None and r["gateway_peak_rss_mb"] > 0
    # Where one process cannot hold the slow streams, they go through workers on one
    # core, and their memory is the summed PSS sampled during the run.
    shared = [r for r in rows if r["target"] == "gateway, 2 processes on one core"]
    assert shared and shared[0]["gateway_peak_pss_mb"] > 0
    assert shared[0]["gateway_peak_pss_mb"] < shared[0]["gateway_peak_rss_mb"]
    report = (tmp_path / "latest.md").read_text()
    assert "| chat | gateway |" in report
    # Translation beside the native relay of the same stream, in the same run.
    for native, translated in (("translation: chat stream, native",
                                "translation: chat stream, chat -> Messages"),
                               ("translation: responses stream, native",
                                "translation: responses stream, Responses -> chat")):
        pair = [r for r in rows if r["scenario"] in (native, translated)]
        assert len(pair) == 4 and all(r["gateway_cpu_us_per_request"] > 0 for r in pair)
        assert all(r["added_ttfb_p50_ms"] is not None for r in pair if r["scenario"] == translated)
    # Every target of issue #7 gets a line: met, not met, or not measured in a smoke run;
    # and each translation's CPU beside the native relay's (issue #22), at each concurrency.
    verdicts = json.loads((tmp_path / "latest.json").read_text())["targets"]
    assert len(verdicts) == 8 + 6 and "| idle RSS, sidecar (no database) | <= 60 MB |" in report
    assert "| idle RSS, with a database | <= 90 MB |" in report
    assert sum("CPU/request vs native" in v["target"] for v in verdicts) == 6
    for target in ("idle RSS, sidecar (no database)", "idle RSS, with a database"):
        idle = next(v for v in verdicts if v["target"] == target)
        assert idle["met"] in (True, False) and idle["measured"].endswith("MB")
    # The sidecar answers the plain scenarios like the others.
    assert any(r["target"] == "gateway, sidecar (no database)" and r["requests"] > 0 for r in rows)
