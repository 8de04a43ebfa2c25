"""Line and branch coverage per package, from the coverage.json a pytest run writes, and
a floor for each: `python -m tests.coverage_gate [coverage.json]` prints the figures and
exits 1 when a package is below its floor.

The floor is issue #21's 90 % for each package (measured on 2026-12-03 at 93.5 % for
gateway/ and 95.2 % for policies/): a change that leaves more untested fails the run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

FLOORS = {"gateway/": 90.0, "policies/": 90.0}


def figures(report: dict[str, object]) -> dict[str, tuple[int, int]]:
    """Per package: (covered, total), lines and branches counted together as
    coverage.py's own percentage does."""
    out = {package: [0, 0] for package in FLOORS}
    files = report["files"]
    assert isinstance(files, dict)
    for name, data in files.items():
        summary = data["summary"]
        for package, sums in out.items():
            if name.startswith(package):
                sums[0] += summary["covered_lines"] + summary["covered_branches"]
                sums[1] += summary["num_statements"] + summary["num_branches"]
    return {package: (covered, total) for package, (covered, total) in out.items()}


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "coverage.json")
    report = json.loads(path.read_text())
    failed = False
    print("coverage (lines and branches):")
    for package, (covered, total) in figures(report).items():
        percent = 100.0 * covered / total if total else 100.0
        floor = FLOORS[package]
        verdict = "ok" if percent >= floor else "BELOW"
        failed |= percent < floor
        print(f"  {package:<10} {percent:5.1f} %  ({covered}/{total})  floor {floor:.1f} %  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
