"""One long stream without usage through the plain gateway: its peak memory and how long
the stream and its count took, for this tree and for each `--ab` revision (one after the
other; each gateway alone on core 0).

    python -m tests.benchmarks.large_answer [--mb 100] [--ab REV ...]

The simulator streams `--mb` MB of 1 KB chunks with no pause between them and reports no
usage (`x-sim-fault: no-usage`), so the gateway counts what it relayed. The gateway's
VmHWM is read once its CPU time stops rising (the count is over). By hand, not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
from pathlib import Path

import aiohttp

from tests.benchmarks.bench import CHAT, KEY, VARIANTS, Proc, free_port, gateway_config, worktree

PIECE = "The gateway counts what it relays, piece by piece, as it streams. " * 16


async def _stream(gateway: Proc, port: int, megabytes: int) -> str:
    headers = {"api-key": KEY, "x-sim-fault": "no-usage", "x-sim-token-ms": "0",
               "x-sim-chunks": str(megabytes * 1_000_000 // len(PIECE)),
               "x-sim-chunk": "b64:" + base64.b64encode(PIECE.encode()).decode()}
    idle = gateway.memory_mb("VmRSS")
    started = time.perf_counter()
    received = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800)) as session, \
            session.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                         json={**CHAT, "stream": True}, headers=headers) as answer:
        async for chunk in answer.content.iter_any():
            received += len(chunk)
    streamed = time.perf_counter() - started
    last = -1.0
    while (now := gateway.cpu_seconds()) != last:  # the count runs after the stream
        last = now
        await asyncio.sleep(2)
    return (f"{received / 1e6:.0f} MB streamed in {streamed:.1f} s, CPU {last:.1f} s; "
            f"RSS idle {idle:.0f} MB, peak {gateway.memory_mb('VmHWM'):.0f} MB")


def measure(tree: Path | None, megabytes: int) -> str:
    gateway_core, sim_core = ("0", "1") if (os.cpu_count() or 1) >= 2 else (None, None)
    sim_port, port = free_port(), free_port()
    sim = Proc(["simulate", "--port", str(sim_port)], sim_core, f"http://127.0.0.1:{sim_port}/healthz")
    try:
        gateway = Proc(["serve", "--config", gateway_config(sim_port, port, VARIANTS[0], None)],
                       gateway_core, f"http://127.0.0.1:{port}/healthz", cwd=tree)
        try:
            return asyncio.run(_stream(gateway, port, megabytes))
        finally:
            gateway.stop()
    finally:
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mb", type=int, default=100)
    p.add_argument("--ab", metavar="REV", action="append", default=[])
    args = p.parse_args(argv)
    print(f"this tree: {measure(None, args.mb)}")
    for rev in args.ab:
        print(f"{rev}: {measure(worktree(rev), args.mb)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
