"""Instructions per request, counted by valgrind's callgrind: an A/B that a shared,
noisy machine cannot blur (the same code, inputs and environment give the same
count, whatever else the machine is doing).

    python -m tests.benchmarks.instructions [--requests 500] [--ab REV ...] [--stream]
                                            [--body-kb N] [--policies] [--case NAME]

For the working tree and each REV (a git worktree, given a config that revision
accepts), it starts the simulator and the gateway under callgrind with
instrumentation off, sends `--warm-up` requests (200), then counts the gateway's
instructions over `--requests` sequential chat requests (one connection, as at
concurrency 1). `--case` counts one of the translation benchmark's streams instead
(tests/benchmarks/translation.py: `chat-native`, `chat-messages`, `responses-native`,
`responses-chat`, and the stored pair's `-stored` forms), so that what a translation adds
is counted beside its native stream. Counts include everything the process runs in that window (the loop,
aiohttp, the ledger's spool writes) but the timers that fire by the wall clock, which
are set out of it; not the kernel. Slow (about 50x under valgrind): by hand, not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

from tests.benchmarks import translation
from tests.benchmarks.bench import (
    CHAT,
    KEY,
    VARIANTS,
    Proc,
    Variant,
    free_port,
    gateway_config,
    worktree,
)
from tests.benchmarks.profile import padded

POLICIES = Variant("gateway + in-process limits + blocklist/PII filter", limits=True, content=True)
SIDECAR = next(v for v in VARIANTS if not v.database)


async def _send(url: str, body: dict[str, object], n: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            async with session.post(url, json=body, headers={"api-key": KEY}) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status} from the gateway")


def count(tree: Path | None, sim_port: int, requests: int, stream: bool, warm_up: int,
          legacy: bool = False, body_kb: int = 0, policies: bool = False,
          case: translation.Case | None = None, sidecar: bool = False) -> float:
    """Instructions per request of the gateway in `tree` (None: this checkout), with the
    same config for every revision unless `legacy` (an old one that refuses its keys).
    Timers that would fire a number of times set by the wall clock (the ledger's flush,
    the config watch) are pushed out of the window: under valgrind a busy machine slows
    the run, more of them would fire, and the A/B would measure the machine's load."""
    port = free_port()
    variant = POLICIES if policies else (SIDECAR if sidecar else VARIANTS[0])
    config = gateway_config(sim_port, port, variant, None, legacy=legacy, quiet_timers=True)
    out = Path(tempfile.mkdtemp(prefix="callgrind-")) / "gw.out"
    # The main thread only: the event loop, where every request's work is. Other threads
    # wake by the wall clock (aiosqlite's polls its queue every 0.1 s), and under valgrind
    # a busy machine stretches the run, so their share measured the machine's load.
    valgrind = ("valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
                f"--callgrind-out-file={out}")
    gateway = Proc(["serve", "--config", config], None, f"http://127.0.0.1:{port}/healthz",
                   cwd=tree, wrapper=valgrind, wait_s=120)
    pid = str(gateway.popen.pid)
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        chat = padded(body_kb) if body_kb else CHAT
        body = {**chat, "stream": True} if stream else chat
        if case is not None:
            url, body = f"http://127.0.0.1:{port}{case.path}", case.body
        asyncio.run(_send(url, body, warm_up))
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        asyncio.run(_send(url, body, requests))
        subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    finally:
        gateway.stop()
    total = 0
    for name in glob.glob(f"{out}*-01"):
        for line in Path(name).read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    if not total:
        raise RuntimeError(f"no count for the main thread in {sorted(glob.glob(f'{out}*'))}")
    shutil.rmtree(out.parent, ignore_errors=True)
    return total / requests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--warm-up", type=int, default=200)
    p.add_argument("--ab", metavar="REV", action="append", default=[],
                   help="also count the gateway at git revision REV")
    p.add_argument("--stream", action="store_true", help="streamed chat instead of plain")
    p.add_argument("--policies", action="store_true",
                   help="in-process limits and the blocklist and PII filters on prompt and answer")
    p.add_argument("--body-kb", type=int, default=0,
                   help="pad the request with earlier turns to about this size")
    p.add_argument("--case", choices=sorted(translation.CASES),
                   help="one of the translation benchmark's streams instead of chat")
    p.add_argument("--sidecar", action="store_true",
                   help="the gateway without a database (database.enabled: false, no ledger)")
    p.add_argument("--legacy-config", action="store_true",
                   help="give the --ab revisions the older config (for revisions before 2026-12)")
    args = p.parse_args(argv)
    if args.case and (args.stream or args.body_kb or args.legacy_config):
        p.error("--case names its own stream and body, in this config: not with --stream, "
                "--body-kb or --legacy-config")
    sim_port = free_port()
    sim = Proc(["simulate", "--port", str(sim_port), "--tokens", "20"], None,
               f"http://127.0.0.1:{sim_port}/healthz")
    try:
        case = translation.CASES[args.case] if args.case else None
        here = count(None, sim_port, args.requests, args.stream, args.warm_up,
                     body_kb=args.body_kb, policies=args.policies, case=case,
                     sidecar=args.sidecar)
        what = (args.case or ("streamed chat" if args.stream else "chat")) + (
            f", {args.body_kb} KB body" if args.body_kb else "") + (
            ", limits + blocklist + PII" if args.policies else "") + (
            ", sidecar (no database)" if args.sidecar else "")
        print(f"{what}, instructions per request (callgrind, {args.requests} requests):")
        print(f"  this tree: {here / 1000:,.1f} k")
        for rev in args.ab:
            there = count(worktree(rev), sim_port, args.requests, args.stream, args.warm_up,
                          args.legacy_config, args.body_kb, args.policies, case, args.sidecar)
            print(f"  {rev}: {there / 1000:,.1f} k  (this tree {100 * (here / there - 1):+.1f} %)")
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
