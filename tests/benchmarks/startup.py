"""CPU of a gateway's start, from the process's launch to its first /healthz answer, then
SIGTERM: on an empty database (a first start) and on one already at head (every later
start), the CPU of the process and every process it started, read from getrusage.

    python -m tests.benchmarks.startup [--starts 6] [--ab REV]

Each start is a new `model-gateway serve` with a SQLite database of its own; `--ab` runs
the same starts at git revision REV (a worktree), interleaved. By hand, not in CI: the
suite's own gateways start this way hundreds of times."""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.bench import free_port, worktree
from tests.conftest import wait_up


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_once(tree: Path | None, database: Path) -> float:
    """Seconds of CPU for one start and stop of a gateway on `database`."""
    port = free_port()
    config = database.parent / "gateway.yaml"
    config.write_text(json.dumps({
        "auth": {"allow_anonymous": True}, "server": {"host": "127.0.0.1", "port": port},
        "database": {"url": f"sqlite:///{database}"},
        "deployments": [{"name": "a", "model": "a", "backends": [
            {"url": "http://127.0.0.1:9", "api": "openai"}]}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    if tree is not None:  # that tree's packages first
        env["PYTHONPATH"] = str(tree)
    before = _children_cpu()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                            cwd=tree, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    wait_up(f"http://127.0.0.1:{port}", proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    return _children_cpu() - before


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--starts", type=int, default=6)
    p.add_argument("--ab", metavar="REV")
    args = p.parse_args(argv)
    trees: dict[str, Path | None] = {"this tree": None}
    if args.ab:
        trees[args.ab] = worktree(args.ab)
    spent: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.starts):
        for name, tree in trees.items():
            with tempfile.TemporaryDirectory() as folder:
                database = Path(folder) / "gateway.db"
                spent.setdefault((name, "empty database"), []).append(start_once(tree, database))
                spent.setdefault((name, "schema at head"), []).append(start_once(tree, database))
    print(f"CPU per start, median of {args.starts} (the gateway and the processes it starts):")
    for (name, kind), seconds in spent.items():
        print(f"  {name}, {kind}: {sorted(seconds)[len(seconds) // 2]:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
