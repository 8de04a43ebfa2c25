"""Where the gateway's CPU goes under load: py-spy samples the gateway while wrk drives it,
and the ten functions with the most samples of their own (self time) are printed, with
the share of all samples each took, and the same by cumulative time.

    pip install py-spy   # by hand: not a project dependency
    python -m tests.benchmarks.profile [--concurrency 64] [--seconds 20] [--body-kb 1]
                                       [--policies] [--stream] [--case NAME]

The gateway and the simulator run as in `tests.benchmarks.bench` (the gateway on core 0,
the simulator and wrk on core 1 when there are two). `--body-kb` pads the chat request
with earlier turns to about that size (an agent's history); `--policies` is the bench's
variant with in-process limits and the blocklist and PII filters; `--case` drives one of
the translation benchmark's streams (tests/benchmarks/translation.py CASES). By hand,
not in CI.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tests.benchmarks import translation
from tests.benchmarks.bench import CHAT, KEY, VARIANTS, Proc, free_port, gateway_config
from tests.benchmarks.loadgen import streams, wrk

# The venv's own (pip install py-spy), else one on the PATH.
PY_SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"


def padded(body_kb: int) -> dict[str, object]:
    """The bench's chat body with earlier turns in front, to about `body_kb` KB."""
    turn = "The gateway relays this turn of an agent's history; it is long on purpose. " * 13
    history: list[dict[str, str]] = []
    size = 0
    while size < body_kb * 1024 - 200:
        role = "user" if len(history) % 2 == 0 else "assistant"
        history.append({"role": role, "content": turn})
        size += len(turn) + 40
    messages = CHAT["messages"]
    assert isinstance(messages, list)
    return {**CHAT, "messages": [*history, *messages]}


def summarize(raw: Path, top: int) -> str:
    """py-spy's raw output (one line per distinct stack: frames;...;frames count) folded
    into self and cumulative sample counts per function."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        # By function, not by line: a function's cost is spread over its lines.
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "self time:"]
    lines += [f"  {100 * n / samples:5.1f} %  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "cumulative (gateway and policies code only):"]
    ours = [(f, n) for f, n in total.most_common() if "(gateway/" in f or "(policies/" in f]
    lines += [f"  {100 * n / samples:5.1f} %  {frame}" for frame, n in ours[:top]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--body-kb", type=int, default=0, help="pad the request to this size")
    p.add_argument("--policies", action="store_true",
                   help="in-process limits, blocklist and PII filters on prompt and answer")
    p.add_argument("--stream", action="store_true", help="streamed chat (20 chunks)")
    p.add_argument("--responses", metavar="ALIAS",
                   help="streamed Responses (stored) on ALIAS instead of chat: bench (native) "
                        "or bench-chat-only (translated to chat)")
    p.add_argument("--case", choices=sorted(translation.CASES),
                   help="one of the translation benchmark's streams instead of chat")
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args(argv)
    two_cores = (os.cpu_count() or 1) >= 2
    gw_cores, load_cores = ("0", "1") if two_cores else (None, None)
    variant = VARIANTS[0]
    if args.policies:
        variant = next(v for v in VARIANTS if v.content)
        variant = type(variant)(variant.label, limits=True, content=True)
    sim_port, port = free_port(), free_port()
    sim = Proc(["simulate", "--port", str(sim_port), "--tokens", "20"], load_cores,
               f"http://127.0.0.1:{sim_port}/healthz")
    gw = Proc(["serve", "--config", gateway_config(sim_port, port, variant, None)], gw_cores,
              f"http://127.0.0.1:{port}/healthz")
    raw = Path(tempfile.mkdtemp(prefix="profile-")) / "stacks.txt"
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = padded(args.body_kb) if args.body_kb else CHAT
        headers = {"Content-Type": "application/json", "api-key": KEY}
        case = translation.CASES[args.case] if args.case else None
        if case is not None:  # warm up the path that is sampled
            streams(f"http://127.0.0.1:{port}{case.path}", case.body, headers, args.concurrency,
                    2.0, end=case.end)
        else:
            wrk(url, body, headers, args.concurrency, 2, load_cores)
        # Sampled inside the load's window: when wrk stops, it leaves requests unfinished,
        # and the count of what they had received is not the steady state's cost.
        spy = subprocess.Popen(["sh", "-c", f"sleep 1; exec {PY_SPY} record --pid {gw.popen.pid} "
                                f"--format raw --duration {max(1, round(args.seconds) - 3)} "
                                f"--rate 250 --nonblocking --output {raw}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if case is not None:
            load = threading.Thread(target=streams, args=(
                f"http://127.0.0.1:{port}{case.path}", case.body, headers, args.concurrency,
                args.seconds), kwargs={"end": case.end})
            load.start()
            load.join()
        elif args.responses:
            body = {"model": args.responses, "stream": True, "input": "Hello there"}
            load = threading.Thread(target=streams, args=(
                f"http://127.0.0.1:{port}/v1/responses", body, headers, args.concurrency,
                args.seconds), kwargs={"end": b"response.completed"})
            load.start()
            load.join()
        elif args.stream:
            load = threading.Thread(target=streams, args=(url, {**body, "stream": True}, headers,
                                                          args.concurrency, args.seconds))
            load.start()
            load.join()
        else:
            wrk(url, body, headers, args.concurrency, args.seconds, load_cores)
        spy.wait(args.seconds + 60)
    finally:
        gw.stop()
        sim.stop()
    print(f"{args.case or ('streamed ' if args.stream else '') + 'chat'}, c={args.concurrency}, "
          f"{args.body_kb or 'about 0.1'} KB body{', policies' if args.policies else ''}")
    print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
