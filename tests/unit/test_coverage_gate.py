"""The coverage floor fails a run below it, per package."""

from __future__ import annotations

import json
from pathlib import Path

from tests.coverage_gate import FLOORS, main


def report(path: Path, gateway: tuple[int, int], policies: tuple[int, int]) -> str:
    def file(covered: int, total: int) -> dict[str, object]:
        return {"summary": {"covered_lines": covered, "covered_branches": 0,
                            "num_statements": total, "num_branches": 0}}

    path.write_text(json.dumps({"files": {"gateway/app.py": file(*gateway),
                                          "policies/base.py": file(*policies)}}))
    return str(path)


def test_each_package_is_held_to_ninety_per_cent(tmp_path: Path) -> None:
    assert FLOORS == {"gateway/": 90.0, "policies/": 90.0}
    assert main([report(tmp_path / "ok.json", (90, 100), (95, 100))]) == 0
    assert main([report(tmp_path / "low.json", (95, 100), (89, 100))]) == 1
