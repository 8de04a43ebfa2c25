"""Issue #7's targets, read off one benchmark run: what was asked, what was measured,
and whether it was met, so that a run answers the question it was made for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.benchmarks import translation

SLOW_STREAMS_GOAL = 10_000


@dataclass
class Verdict:
    target: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


SIDECAR = "gateway, sidecar (no database)"


def _find(rows: Sequence[Any], scenario: str, target: str, concurrency: int | None = None) -> Any:
    for r in rows:
        if r.scenario.startswith(scenario) and r.target == target and (
                concurrency is None or r.concurrency == concurrency):
            return r
    return None


def _check(target: str, goal: str, value: float | None, ok: bool, unit: str) -> Verdict:
    if value is None:
        return Verdict(target, goal, "not measured", None)
    return Verdict(target, goal, f"{value:g} {unit}".strip(), ok)


def verdicts(rows: Sequence[Any], cores: int) -> list[Verdict]:
    out = []
    one = _find(rows, "chat", "gateway", 1)
    added_p50 = one.added_p50_ms if one else None
    added_p99 = one.added_p99_ms if one else None
    out.append(_check("added latency at concurrency 1, p50", "<= 0.5 ms", added_p50,
                      added_p50 is not None and added_p50 <= 0.5, "ms"))
    out.append(_check("added latency at concurrency 1, p99", "<= 1.5 ms", added_p99,
                      added_p99 is not None and added_p99 <= 1.5, "ms"))
    busy = _find(rows, "chat", "gateway", 64)
    rps = busy.rps if busy else None
    out.append(_check("non-streamed requests/s at concurrency 64", ">= 3,000", rps,
                      rps is not None and rps >= 3000, "req/s"))
    stream = _find(rows, "stream", "gateway", 1)
    ttfb = stream.added_ttfb_p50_ms if stream else None
    out.append(_check("stream time-to-first-byte overhead, p50", "<= 0.5 ms", ttfb,
                      ttfb is not None and ttfb <= 0.5, "ms"))
    for target, goal in ((SIDECAR, 60), ("gateway", 90)):
        idle = [r.gateway_idle_rss_mb for r in rows
                if r.target == target and r.gateway_idle_rss_mb is not None]
        label = "idle RSS, sidecar (no database)" if target == SIDECAR else "idle RSS, with a database"
        out.append(_check(label, f"<= {goal} MB", idle[0] if idle else None,
                          bool(idle) and idle[0] <= goal, "MB"))
    slow = [r for r in rows if r.scenario.startswith("slow streams")
            and r.target.startswith("gateway")]
    most = max(slow, key=lambda r: r.concurrency) if slow else None
    if most is None:
        out.append(Verdict("10,000 slow streams", "<= 600 MB, no errors", "not measured", None))
    else:
        # Worker processes share their parent's pages: PSS counts them once.
        pss = most.gateway_peak_pss_mb
        memory = pss if pss is not None else most.gateway_peak_rss_mb or 0.0
        where = "" if most.target == "gateway" else f" ({most.target.removeprefix('gateway, ')})"
        measured = (f"{most.concurrency:,} streams{where}: "
                    f"{'peak PSS' if pss is not None else 'peak RSS'} {memory:g} MB, "
                    f"{most.errors} errors")
        complete = most.concurrency >= SLOW_STREAMS_GOAL
        ok = most.errors == 0 and memory <= 600
        out.append(Verdict("10,000 slow streams", "<= 600 MB, no errors", measured,
                           ok if complete else None))
    two = _find(rows, "chat", "gateway --workers 2", 64)
    if two is None or busy is None:
        out.append(Verdict("--workers 2 scales throughput", "more req/s than 1 worker",
                           "not measured", None))
    else:
        measured = f"{two.rps:g} vs {busy.rps:g} req/s"
        # Two workers need two cores of their own besides the simulator's and the load
        # generator's; with fewer, the second worker only takes CPU from those.
        if cores < 4:
            measured += f" ({cores} cores: needs 4 to be measured)"
        out.append(Verdict("--workers 2 scales throughput", "more req/s than 1 worker",
                           measured, two.rps > busy.rps if cores >= 4 else None))
    for pair, concurrency, ratio in translation.ratios(list(rows)):
        out.append(_check(f"{pair}: CPU/request vs native, c={concurrency} (issue #22)",
                          f"<= {translation.CPU_GOAL:g}x", None if ratio is None else round(ratio, 2),
                          ratio is not None and ratio <= translation.CPU_GOAL, "x"))
    return out


def markdown(results: Sequence[Verdict]) -> str:
    mark = {True: "met", False: "NOT met", None: "not measured here"}
    lines = ["| target | goal | measured | |", "|---|---|---|---|"]
    lines += [f"| {v.target} | {v.goal} | {v.measured} | {mark[v.met]} |" for v in results]
    return "\n".join(lines) + "\n"
