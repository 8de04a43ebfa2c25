"""What a translated stream costs in the translator itself, beside the least any Python
translation could cost: instructions per stream by callgrind, in one process.

    python -m tests.benchmarks.translation_floor [--streams 200]

The stream is Claude's recorded text stream (tests/fixtures/contract/anthropic-messages-stream.sse,
as the gateway's SSE decoder gives its events), translated for a chat client:

- `translator`: gateway.translate.chat_messages' stream translator, every event fed;
- `floor`: per event only what no translation can skip: orjson.loads of the event, three
  lookups to find its text, orjson.dumps of the text between two constant byte strings;
- `parse only`: orjson.loads of each event and nothing else.

Each is run under callgrind with 0 and with `--streams` streams; the difference over the
streams is its count per stream (the interpreter's start-up cancels out). By hand (slow
under valgrind), by hand; CI runs the three loops in process."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from gateway.core.sse import Decoder
from gateway.translate import chat_messages
from gateway.translate.base import Target

RECORDED = Path(__file__).resolve().parents[1] / "fixtures/contract/anthropic-messages-stream.sse"
HEAD = (b'{"id":"msg_1","object":"chat.completion.chunk","created":0,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":')
TAIL = b'},"logprobs":null,"finish_reason":null}]}'
MODES = ("translator", "floor", "parse only")


def events(path: Path) -> list[tuple[bytes | None, bytes]]:
    decoder = Decoder()
    return decoder.feed(path.read_bytes()) + decoder.close()


def run(mode: str, streams: int, path: Path) -> None:
    stream = events(path)
    target = Target("bench-claude", "claude", 64, "r")
    loads, dumps = orjson.loads, orjson.dumps
    for _ in range(streams):
        if mode == "translator":
            translator = chat_messages.TRANSLATOR.stream({}, target)
            for name, data in stream:
                translator.feed(name, data)
            translator.close()
        elif mode == "floor":
            out = []
            for _, data in stream:
                event = loads(data)
                delta = event.get("delta")
                if type(delta) is dict and delta.get("type") == "text_delta":
                    out.append(HEAD + dumps(delta.get("text")) + TAIL)
        else:
            for _, data in stream:
                loads(data)


def count(mode: str, streams: int, path: Path) -> int:
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out",
             sys.executable, "-m", "tests.benchmarks.translation_floor", "--inner", mode,
             "--streams", str(streams), "--recorded", str(path)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"})  # the same dict layouts each run
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(result.stderr[-2000:])
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--recorded", type=Path, default=RECORDED)
    p.add_argument("--inner", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inner:
        run(args.inner, args.streams, args.recorded)
        return 0
    n = len(events(args.recorded))
    print(f"instructions per stream ({n} events of {args.recorded.name}; callgrind, "
          f"{args.streams} streams):")
    for mode in MODES:
        per = (count(mode, args.streams, args.recorded) - count(mode, 0, args.recorded)) / args.streams
        print(f"  {mode}: {per / 1000:,.1f} k ({per / n / 1000:,.1f} k per event)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
