"""Load generators for the benchmark: wrk for plain requests, an asyncio client for
streams (wrk cannot time the first byte of a stream)."""

from __future__ import annotations

import asyncio
import collections
import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    latencies_ms: dict[str, float]  # p50, p90, p99
    ttfb_ms: dict[str, float] = field(default_factory=dict)  # streams only
    failures: dict[str, int] = field(default_factory=dict)  # streams only: errors by kind

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99)}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, body: dict[str, object], headers: dict[str, str], connections: int,
        seconds: float, cores: str | None) -> Load:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    threads = 1 if connections < 16 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "-s", script.name, url]
    if cores:
        cmd = ["taskset", "-c", cores, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    Path(script.name).unlink()
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))  # type: ignore[union-attr]
    duration = re.search(r"requests in ([\d.]+)(us|ms|s|m)", out)
    elapsed = _ms(duration.group(1) + duration.group(2)) / 1000 if duration else seconds
    latencies = {f"p{q}": _ms(v) for q, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)}
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return Load(requests, errors, elapsed, latencies)


# How each API's stream ends: the bytes that must be in its last event.
DONE = b"data: [DONE]\n\n"


async def _one_stream(session: aiohttp.ClientSession, url: str, body: dict[str, object],
                      headers: dict[str, str], end: bytes = DONE,
                      failures: collections.Counter[str] | None = None) -> tuple[float, float, bool]:
    """(ms to the first byte, ms to the end, complete); what went wrong, by kind, into
    `failures`."""
    started = time.perf_counter()
    first = None
    why = ""
    try:
        async with session.post(url, json=body, headers=headers) as response:
            ok = response.status == 200
            why = "" if ok else f"HTTP {response.status}"
            tail = b""
            async for chunk in response.content.iter_any():
                if first is None:
                    first = time.perf_counter()
                tail = (tail + chunk)[-4096:]
            last = tail[tail.rstrip(b"\n").rfind(b"\n\n") + 2:] if b"\n\n" in tail.rstrip(b"\n") else tail
            if ok and not (tail.endswith(b"\n\n") and end in last):
                ok, why = False, "stream without its end"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        ok, why = False, type(exc).__name__
    if not ok and failures is not None:
        failures[why] += 1
    end = time.perf_counter()
    return ((first or end) - started) * 1000, (end - started) * 1000, ok


async def _streams(url: str, body: dict[str, object], headers: dict[str, str], concurrency: int,
                   seconds: float | None, total: int | None, ramp_s: float, end: bytes) -> Load:
    """`concurrency` workers open streams back to back for `seconds`, or `total` streams
    at once, their starts spread over `ramp_s` (10,000 SYNs in one instant only
    measure the kernel's listen backlog)."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=600)
    results: list[tuple[float, float, bool]] = []
    failures: collections.Counter[str] = collections.Counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        if total is not None:
            async def delayed(i: int) -> tuple[float, float, bool]:
                await asyncio.sleep(ramp_s * i / total)
                return await _one_stream(session, url, body, headers, end, failures)

            results = list(await asyncio.gather(*(delayed(i) for i in range(total))))
        else:
            assert seconds is not None
            deadline = started + seconds

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    results.append(await _one_stream(session, url, body, headers, end, failures))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ok = [r for r in results if r[2]]
    return Load(
        requests=len(results), errors=len(results) - len(ok), seconds=elapsed,
        latencies_ms=percentiles([r[1] for r in ok]), ttfb_ms=percentiles([r[0] for r in ok]),
        failures=dict(failures),
    )


def streams(url: str, body: dict[str, object], headers: dict[str, str], concurrency: int,
            seconds: float | None = None, total: int | None = None, ramp_s: float = 0.0,
            end: bytes = DONE) -> Load:
    return asyncio.run(_streams(url, body, headers, concurrency, seconds, total, ramp_s, end))

