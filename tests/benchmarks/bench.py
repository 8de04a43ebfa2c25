"""The gateway benchmark. One command, one run, honest ratios:

    python -m tests.benchmarks.bench [--seconds 10] [--peer URL] [--smoke] [--media-only]
                                     [--translation-only]

It starts the project's simulator and the gateway as real processes, pins the
gateway alone on core 0 and the simulator and the load generators on core 1
(when there are two cores), and measures every scenario straight against the
simulator (the floor) and through the gateway in the same run. Results go to
bench-results/latest.json and latest.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from policies.auth import hash_key
from tests.benchmarks import media, targets, translation
from tests.benchmarks.loadgen import Load, streams, wrk

KEY = "bench-key"
CHAT: dict[str, object] = {
    "model": "bench", "messages": [{"role": "user", "content": "Benchmark the gateway, please."}]}
RESULTS = Path("bench-results")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A process of ours, pinned, with its CPU time and memory readable from /proc."""

    def __init__(self, args: list[str], cores: str | None, health: str,
                 module: str = "gateway", cwd: Path | None = None,
                 wrapper: tuple[str, ...] = (), wait_s: float = 60.0) -> None:
        """`wrapper`: a command the interpreter runs under (valgrind, say); `wait_s`: how
        long the health URL may take to answer."""
        cmd = [*wrapper, sys.executable, "-m", module, *args]
        if cores:
            cmd = ["taskset", "-c", cores, *cmd]
        # In another tree (--ab), that tree's packages come first on the path.
        env = {**os.environ, "PYTHONPATH": str(cwd)} if cwd else {**os.environ}
        if wrapper:  # coverage would be counted with the gateway (and take 100x as long)
            env = {k: v for k, v in env.items() if not k.startswith("COVERAGE_")}
        self.popen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      cwd=cwd, env=env)
        for _ in range(int(wait_s / 0.05)):
            try:
                urllib.request.urlopen(health, timeout=1)
                return
            except OSError:
                if self.popen.poll() is not None:
                    err = self.popen.stderr.read() if self.popen.stderr else b""
                    raise RuntimeError(f"{args[0]} exited: {err!r}") from None
                time.sleep(0.05)
        raise RuntimeError(f"{args[0]} did not come up")

    def pids(self) -> list[int]:
        """The process and its children (--workers)."""
        pids = [self.popen.pid]
        try:
            children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children").read_text()
            pids += [int(p) for p in children.split()]
        except OSError:
            pass
        return pids

    def cpu_seconds(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def _summed_mb(self, file: str, field: str) -> float:
        """A `field: N kB` line of /proc/<pid>/<file>, summed over the processes."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        return total / 1024

    def memory_mb(self, field: str) -> float:
        """VmRSS (now) or VmHWM (peak), in MB."""
        return self._summed_mb("status", field)

    def pss_mb(self) -> float:
        """Proportional set size: forked workers share their parent's pages, which a
        sum of RSS would count once per process."""
        return self._summed_mb("smaps_rollup", "Pss")

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGINT)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()


@dataclass
class Row:
    scenario: str
    target: str
    concurrency: int
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    ttfb_p50_ms: float | None = None
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None
    added_ttfb_p50_ms: float | None = None
    gateway_cpu_s: float | None = None
    # The gateway's CPU time over the run divided by the requests it served.
    gateway_cpu_us_per_request: float | None = None
    gateway_peak_rss_mb: float | None = None
    gateway_idle_rss_mb: float | None = None
    gateway_peak_pss_mb: float | None = None  # sampled; set for multi-process gateways
    note: str = ""


def row(scenario: str, target: str, concurrency: int, load: Load, **extra: Any) -> Row:
    lat = load.latencies_ms
    made = Row(scenario, target, concurrency, load.requests, load.errors, round(load.rps, 1),
               round(lat.get("p50", 0), 3), round(lat.get("p90", 0), 3), round(lat.get("p99", 0), 3),
               round(load.ttfb_ms["p50"], 3) if load.ttfb_ms else None, **extra)
    if load.failures:  # what the errors were, so that a run says it
        made.note = "errors: " + ", ".join(f"{n} {kind}" for kind, n in sorted(
            load.failures.items(), key=lambda kv: -kv[1]))
    return made


def compare(gw: Row, floor: Row) -> None:
    gw.added_p50_ms = round(gw.p50_ms - floor.p50_ms, 3)
    gw.added_p99_ms = round(gw.p99_ms - floor.p99_ms, 3)
    if gw.ttfb_p50_ms is not None and floor.ttfb_p50_ms is not None:
        gw.added_ttfb_p50_ms = round(gw.ttfb_p50_ms - floor.ttfb_p50_ms, 3)


@dataclass(frozen=True)
class Variant:
    label: str
    workers: int = 1
    limits: bool = False
    redis: bool = False
    content: bool = False
    streams: bool = False  # also run the stream scenarios
    database: bool = True  # false: the sidecar, with no database-backed feature at all


VARIANTS = (
    Variant("gateway", streams=True),
    Variant("gateway + in-process limits", limits=True),
    Variant("gateway + Redis limits", limits=True, redis=True),
    Variant("gateway + blocklist/PII filter", content=True, streams=True),
    Variant("gateway --workers 2", workers=2),
    Variant("gateway, sidecar (no database)", database=False),
)

NEWER_STREAMS = (
    ("responses stream 20 chunks", "/v1/responses",
     {"model": "bench", "input": "Hello there", "stream": True}, b"response.completed"),
    ("anthropic stream 20 chunks", "/anthropic/v1/messages",
     {"model": "bench-claude", "max_tokens": 64, "stream": True,
      "messages": [{"role": "user", "content": "Hello there"}]}, b"message_stop"),
)

# Limits that every request passes: the cost of checking four buckets is measured,
# not the cost of rejecting.
NEVER_HIT = {"requests_per_minute": 10**9, "tokens_per_minute": 10**12}


def gateway_config(sim_port: int, port: int, variant: Variant, redis_url: str | None,
                   legacy: bool = False, quiet_timers: bool = False) -> str:
    """The gateway's config; `legacy`: one an older revision accepts (for --ab), without
    the keys it did not know yet; `quiet_timers`: the ledger flush and the config watch
    as rare as they may be (the instruction counter's window)."""
    consumer: dict[str, Any] = {"name": "bench", "api_keys": [hash_key(KEY)], "deployments": ["*"]}
    deployment: dict[str, Any] = {"name": "bench", "model": "bench-model", "backends": [
        {"url": f"http://127.0.0.1:{sim_port}/v1", "api": "openai",
         "timeouts": {"response": 300, "idle": 300}}]}
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    atexit.register(shutil.rmtree, folder, True)
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port, "drain_seconds": 1},
        "consumers": [consumer], "deployments": [deployment],
    }
    if not legacy:
        config["server"]["forward_request_headers"] = ["x-sim-*"]
        config["database"] = {"url": f"sqlite:///{folder}/bench.db"}
        config["deployments"].append({"name": "bench-claude", "model": "bench-claude", "backends": [
            {"url": f"http://127.0.0.1:{sim_port}/anthropic", "api": "anthropic",
             "timeouts": {"response": 300, "idle": 300}}]})
        config["deployments"] += media.deployments(sim_port)
        config["deployments"] += translation.deployments(sim_port)
    if quiet_timers:
        config["ledger"] = {"flush_seconds": 300}
        config["server"]["config_watch_seconds"] = 0
    if not variant.database:
        config["database"] = {"enabled": False}
        config["ledger"] = {"enabled": False}
    if variant.limits:
        consumer["limits"] = deployment["limits"] = NEVER_HIT
    if variant.redis:
        config["redis"] = {"url": redis_url}
    if variant.content:
        config["content_filters"] = {"bench": [
            {"type": "blocklist", "terms": ["forbidden plan", "zorp"], "patterns": [r"secret-\d+"]},
            {"type": "pii", "action": "redact"}]}
        for d in config["deployments"]:
            d["content_filter"] = "bench"
    path = folder / "bench.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return str(path)


def worktree(rev: str) -> Path:
    """A checkout of `rev` in a temporary git worktree, removed when the run ends."""
    folder = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), rev], check=True,
                   capture_output=True)
    atexit.register(subprocess.run, ["git", "worktree", "remove", "--force", str(folder)],
                    capture_output=True)
    return folder


SLOW_STREAMS = 10_000


def slow_stream_processes(streams: int) -> int:
    """Gateway processes needed to hold `streams` open: each stream takes two
    descriptors (the client's socket and the upstream's), and where the per-process
    hard limit is lower than that (20,000 in some sandboxes), the streams are spread
    over worker processes on the same core."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    per_process = (hard - 1000) // 2
    return -(-streams // per_process)


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, max(hard, 65536)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(args: argparse.Namespace) -> list[Row]:
    raise_fd_limit()  # inherited by the processes started below
    two_cores = (os.cpu_count() or 1) >= 2 and not args.no_pin
    gw_cores, load_cores = ("0", "1") if two_cores else (None, None)
    # Children inherit this process's pinning below: a multi-worker gateway is given
    # every core explicitly, or it would share the load generator's.
    all_cores = f"0-{(os.cpu_count() or 1) - 1}" if two_cores else None
    if load_cores:
        os.sched_setaffinity(0, {int(load_cores)})  # this process drives the stream clients
    sim_port, redis_port = free_port(), free_port()
    started: list[Proc | subprocess.Popen[bytes]] = []
    try:
        started.append(Proc(["simulate", "--port", str(sim_port), "--tokens", "20"], load_cores,
                            f"http://127.0.0.1:{sim_port}/healthz"))
        redis = subprocess.Popen(
            ["taskset", "-c", load_cores or "0", "redis-server", "--port", str(redis_port),
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        started.append(redis)
        targets: list[Target] = [Target("simulator (direct)",
                                        f"http://127.0.0.1:{sim_port}/v1/chat/completions",
                                        apis=True)]
        for variant in VARIANTS:
            alone = args.media_only or args.translation_only
            if variant.workers not in args.workers or (alone and variant != VARIANTS[0]):
                continue
            port = free_port()
            config = gateway_config(sim_port, port, variant, f"redis://127.0.0.1:{redis_port}/0")
            gw = Proc(["serve", "--config", config, "--workers", str(variant.workers)],
                      gw_cores if variant.workers == 1 else all_cores,
                      f"http://127.0.0.1:{port}/healthz")
            started.append(gw)
            time.sleep(0.5 * variant.workers)
            targets.append(Target(variant.label, f"http://127.0.0.1:{port}/v1/chat/completions",
                                  gw, variant.streams, gw.memory_mb("VmRSS"), gw.pss_mb(),
                                  apis=variant.streams))
            if args.ab and variant == VARIANTS[0]:
                # The same gateway at another revision, beside it: an A/B in one run.
                port = free_port()
                config = gateway_config(sim_port, port, variant, None, legacy=True)
                old = Proc(["serve", "--config", config], gw_cores,
                           f"http://127.0.0.1:{port}/healthz", cwd=worktree(args.ab))
                started.append(old)
                time.sleep(0.5)
                targets.append(Target(f"gateway at {args.ab}",
                                      f"http://127.0.0.1:{port}/v1/chat/completions", old, True,
                                      old.memory_mb("VmRSS"), old.pss_mb()))
        if args.media_only:
            return media_rows(targets[0], targets[1], args.smoke, args.rounds)
        if args.translation_only:
            return translation_rows(targets[1], args.seconds, args.smoke, args.rounds)
        slow = targets[1]
        # The smoke run always takes the multi-process path, so that CI proves it works.
        processes = 2 if args.smoke else slow_stream_processes(SLOW_STREAMS)
        if processes > 1:
            port = free_port()
            config = gateway_config(sim_port, port, VARIANTS[0], None)
            gw = Proc(["serve", "--config", config, "--workers", str(processes)], gw_cores,
                      f"http://127.0.0.1:{port}/healthz")
            started.append(gw)
            time.sleep(0.5 * processes)
            slow = Target(f"gateway, {processes} processes on one core",
                          f"http://127.0.0.1:{port}/v1/chat/completions", gw, True,
                          gw.memory_mb("VmRSS"), gw.pss_mb())
        if args.baselines:
            upstream = f"http://127.0.0.1:{sim_port}/v1/chat/completions"
            for kind in ("aiohttp", "pyreqwest", "pyqwest"):
                if kind != "aiohttp" and importlib.util.find_spec(kind) is None:
                    continue
                port = free_port()
                proxy = Proc([kind, str(port), upstream], gw_cores,
                             f"http://127.0.0.1:{port}/healthz", "tests.benchmarks.baselines")
                started.append(proxy)
                targets.append(Target(f"minimal proxy, {kind} client",
                                      f"http://127.0.0.1:{port}/v1/chat/completions",
                                      proxy, streams=False))
        targets += [Target(f"peer {url}", url, streams=True) for url in args.peer]
        return [*scenarios(targets, slow, args.seconds, load_cores, args.smoke, args.rounds),
                *translation_rows(targets[1], args.seconds, args.smoke, args.rounds),
                *media_rows(targets[0], targets[1], args.smoke, args.rounds)]
    finally:
        for proc in reversed(started):
            if isinstance(proc, Proc):
                proc.stop()
            else:
                proc.terminate()
                proc.wait(10)


@dataclass
class Target:
    name: str
    url: str
    proc: Proc | None = None
    streams: bool = True
    idle_mb: float = 0.0
    idle_pss_mb: float = 0.0
    apis: bool = False  # serves the Responses and Anthropic APIs too

    def at(self, path: str) -> str:
        return self.url.removesuffix("/v1/chat/completions") + path


class PeakPss:
    """Samples a gateway's summed PSS while a scenario runs (there is no kernel peak
    for PSS as VmHWM is for RSS)."""

    def __init__(self, proc: Proc) -> None:
        self.proc, self.peak = proc, 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            self.peak = max(self.peak, self.proc.pss_mb())

    def __enter__(self) -> PeakPss:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def measured(scenario: str, target: Target, concurrency: int, measure: Any) -> Row:
    cpu = target.proc.cpu_seconds() if target.proc else 0.0
    if target.proc and len(target.proc.pids()) > 1:
        with PeakPss(target.proc) as pss:
            r = row(scenario, target.name, concurrency, measure())
        r.gateway_peak_pss_mb = round(pss.peak, 1)
    else:
        r = row(scenario, target.name, concurrency, measure())
    if target.proc:
        spent = target.proc.cpu_seconds() - cpu
        r.gateway_cpu_s = round(spent, 2)
        if r.requests:
            r.gateway_cpu_us_per_request = round(spent / r.requests * 1e6, 1)
        r.gateway_peak_rss_mb = round(target.proc.memory_mb("VmHWM"), 1)
        if target.idle_mb:
            r.gateway_idle_rss_mb = round(target.idle_mb, 1)
            idle = f"idle RSS {target.idle_mb:.1f} MB"
            if len(target.proc.pids()) > 1:
                idle += f" (PSS {target.idle_pss_mb:.1f} MB)"
            r.note = ", ".join(filter(None, [idle, r.note]))
    return r


def machine_speed() -> float:
    """Milliseconds for a fixed pure-Python loop: on a shared VM the same code runs at
    very different speeds from one hour to the next, and a run should say which."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1000


def median_row(runs: list[Row]) -> Row:
    """One row from repeated runs of a scenario: the median of each figure, so that a
    single lucky (or unlucky) run on a shared machine decides nothing."""
    if len(runs) == 1:
        return runs[0]

    def med(name: str) -> Any:
        values = [getattr(r, name) for r in runs if getattr(r, name) is not None]
        return round(statistics.median(values), 3) if values else None

    merged = replace(runs[0], requests=sum(r.requests for r in runs),
                     errors=sum(r.errors for r in runs))
    for name in ("rps", "p50_ms", "p90_ms", "p99_ms", "ttfb_p50_ms", "gateway_cpu_s",
                 "gateway_cpu_us_per_request"):
        setattr(merged, name, med(name))
    peaks = [r.gateway_peak_rss_mb for r in runs if r.gateway_peak_rss_mb is not None]
    merged.gateway_peak_rss_mb = max(peaks) if peaks else None
    merged.note = ", ".join(filter(None, [runs[0].note, f"median of {len(runs)} runs"]))
    return merged


BARE = "minimal proxy, aiohttp client"
BODY_TARGETS = ("gateway", "gateway + blocklist/PII filter", BARE)


def cpu_against_bare(rows: list[Row]) -> list[Row]:
    """Each gateway row's CPU per request as a multiple of the bare pass-through's in the
    same scenario (in its note), when the bare one ran (`--baselines`)."""
    bare = next((r for r in rows if r.target == BARE), None)
    for r in rows:
        if bare is None or r is bare or not r.gateway_cpu_us_per_request \
                or not bare.gateway_cpu_us_per_request:
            continue
        ratio = r.gateway_cpu_us_per_request / bare.gateway_cpu_us_per_request
        r.note = ", ".join(filter(None, [r.note, f"CPU/request {r.gateway_cpu_us_per_request:g} us, "
                                                 f"{ratio:.2f}x bare"]))
    return rows


def repeated(rounds: int, targets: list[Target], one: Any) -> list[Row]:
    """Every target measured `rounds` times, interleaved (a slow minute of the machine
    then touches all targets alike); the first target is the floor the others are
    compared with."""
    runs: dict[str, list[Row]] = {t.name: [] for t in targets}
    for _ in range(rounds):
        for t in targets:
            runs[t.name].append(one(t))
    rows = [median_row(runs[t.name]) for t in targets]
    for r in rows[1:]:
        compare(r, rows[0])
    return rows


def scenarios(targets: list[Target], slow_target: Target, seconds: float,
              load_cores: str | None, smoke: bool, rounds: int) -> list[Row]:
    headers = {"Content-Type": "application/json", "api-key": KEY}
    rows: list[Row] = []
    # wrk counts only the requests that end within its window: a smoke's window of 1 s
    # once ended with none on a loaded machine (a gateway stalled for a second), so the
    # smoke gives wrk 2 s; the streamed scenarios count every stream they start.
    plain_s = max(seconds, 2.0) if smoke else seconds
    for concurrency in (1, 16) if smoke else (1, 16, 64):
        rows += repeated(rounds, targets, lambda t, c=concurrency: measured(
            "chat", t, c, lambda: wrk(t.url, CHAT, headers, c, plain_s, load_cores)))
    stream_body = {**CHAT, "stream": True}
    streamed = [t for t in targets if t.streams or t.proc is None]
    for concurrency in (1, 4) if smoke else (1, 64):
        rows += repeated(rounds, streamed, lambda t, c=concurrency: measured(
            "stream 20 chunks", t, c, lambda: streams(t.url, stream_body, headers, c,
                                                       seconds=seconds)))
    # The newer APIs' streams, each with its own framing and end.
    newer = [t for t in targets if t.apis]
    for scenario, path, body, end in NEWER_STREAMS:
        for concurrency in (1, 4) if smoke else (1, 64):
            rows += repeated(rounds, newer, lambda t, c=concurrency, s=scenario, p=path, b=body,
                             e=end: measured(s, t, c, lambda: streams(t.at(p), b, headers, c,
                                                                      seconds=seconds, end=e)))
    # The filters' worst case: 64 KB of backtracking bait and of PII-like text, one client.
    filtered = [targets[0], *[t for t in targets if t.name == "gateway + blocklist/PII filter"]]
    if len(filtered) > 1:
        for name, text in (("64 KB of '1.'", "1." * 32_000), ("64 KB of e-mail addresses",
                                                              "x@corp.com " * 6_000)):
            bait = {**CHAT, "messages": [{"role": "user", "content": text}]}
            rows += repeated(rounds, filtered, lambda t, b=bait, n=name: measured(
                f"filter worst case: {n}", t, 1, lambda: wrk(t.url, b, headers, 1, plain_s,
                                                             load_cores)))
    # How the cost grows with the body (issue #27): an agent's turn with its history, and
    # 1 MB, one client, CPU per request beside the bare pass-through's.
    from tests.benchmarks.profile import padded  # (profile imports this module)

    sized = [targets[0], *[t for t in targets if t.name in BODY_TARGETS]]
    for kb in (64,) if smoke else (64, 1024):
        body = padded(kb)
        found = repeated(rounds, sized, lambda t, b=body, k=kb: measured(
            f"chat, {k} KB body", t, 1, lambda: wrk(t.url, b, headers, 1, plain_s, load_cores)))
        rows += cpu_against_bare(found)
    # Many slow streams open at once, through the plain gateway only: memory and fairness.
    tokens, gap = (5, 100) if smoke else (20, 500)
    slow = {**headers, "x-sim-token-ms": str(gap), "x-sim-tokens": str(tokens)}
    for total, gateway in ((50, targets[1]), (50, slow_target)) if smoke else (
            (1000, targets[1]), (SLOW_STREAMS, slow_target)):
        r = measured(f"slow streams ({tokens} x {gap} ms)", gateway, total,
                     lambda total=total, url=gateway.url: streams(
                         url, stream_body, slow, total, total=total, ramp_s=0 if smoke else 2.0))
        r.note += f", duration p99/p50 {r.p99_ms / r.p50_ms:.2f}" if r.p50_ms else ""
        if r.gateway_peak_pss_mb is not None:
            r.note += f", peak PSS {r.gateway_peak_pss_mb:g} MB"
        rows.append(r)
    return rows


def translation_rows(gateway: Target, seconds: float, smoke: bool, rounds: int) -> list[Row]:
    """Native and translated streams through the plain gateway (tests/benchmarks/translation.py)."""
    headers = {"Content-Type": "application/json", "api-key": KEY}

    def one(case: translation.Case, concurrency: int) -> Row:
        return measured(case.scenario, gateway, concurrency, lambda: streams(
            gateway.at(case.path), case.body, headers, concurrency, seconds=seconds, end=case.end))

    return list(translation.rows(one, rounds, (1, 4) if smoke else (1, 64), median_row, compare))


def media_rows(floor: Target, gateway: Target, smoke: bool, rounds: int) -> list[Row]:
    """Images and audio (tests/benchmarks/media.py): a transcription upload and a streamed
    speech answer, direct and through the gateway, its peak RSS during each."""
    size = 2 if smoke else 25
    upload = media.wav_file(size * 1_000_000)
    headers = {"api-key": KEY}
    cases = [(f"transcription upload {size} MB", "whisper-1", "bench-whisper",
              lambda base, model: media.measure_upload(base, model, upload, headers, rounds)),
             ("speech streamed (~40 s mp3)", "tts-1", "bench-tts",
              lambda base, model: media.measure_speech(base, model, headers, rounds * 3))]
    rows: list[Row] = []
    for scenario, upstream_model, alias, measure in cases:
        direct = row(scenario, floor.name, 1, measure(floor.at(""), upstream_model))
        assert gateway.proc is not None
        media.reset_peak(gateway.proc.popen.pid)
        through = measured(scenario, gateway, 1, lambda m=measure, a=alias: m(gateway.at(""), a))
        compare(through, direct)
        rows += [direct, through]
    shutil.rmtree(upload.parent, ignore_errors=True)
    return rows


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    head = ("| scenario | target | conc. | req/s | p50 ms | p99 ms | added p50 | added p99 | "
            "TTFB p50 | added TTFB | errors | gw CPU s | gw peak RSS MB | note |")
    lines = [f"Benchmark of {meta['date']} on {meta['machine']} ({meta['command']}); "
             f"{meta['calibration']}", "", head,
             "|" + "---|" * 14]

    def f(v: float | None) -> str:
        return "" if v is None else f"{v:g}"

    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.target} | {r.concurrency} | {r.rps:g} | {f(r.p50_ms)} | "
            f"{f(r.p99_ms)} | {f(r.added_p50_ms)} | {f(r.added_p99_ms)} | {f(r.ttfb_p50_ms)} | "
            f"{f(r.added_ttfb_p50_ms)} | {r.errors} | {f(r.gateway_cpu_s)} | "
            f"{f(r.gateway_peak_rss_mb)} | {r.note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="per plain/stream scenario")
    p.add_argument("--peer", action="append", default=[],
                   help="another gateway's chat URL taking the same body and api-key header")
    p.add_argument("--workers", type=int, action="append",
                   help="gateway worker counts to run (default: 1 and 2)")
    p.add_argument("--rounds", type=int, default=3,
                   help="runs of each plain and stream scenario, interleaved; medians reported")
    p.add_argument("--smoke", action="store_true", help="a few seconds, to prove it works")
    p.add_argument("--baselines", action="store_true",
                   help="also minimal pass-through proxies (aiohttp client; pyreqwest if installed)")
    p.add_argument("--ab", metavar="REV",
                   help="also run the plain gateway at git revision REV (a worktree), interleaved")
    p.add_argument("--media-only", action="store_true",
                   help="only the images-and-audio scenarios (a 25 MB upload, streamed speech)")
    p.add_argument("--translation-only", action="store_true",
                   help="only the translated streams beside their native relays")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.smoke:  # one short round: the smoke proves the scenarios run, not their medians
        args.seconds = min(args.seconds, 0.5)  # (wrk's scenarios take 2 s: see scenarios)
        args.rounds = 1
    args.workers = args.workers or ([1] if args.smoke else [1, 2])
    if args.smoke:
        args.workers = [1]
    before = machine_speed()
    rows = run(args)
    after = machine_speed()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}",
            "command": "python -m tests.benchmarks.bench " + " ".join(argv or sys.argv[1:]),
            "calibration": f"a fixed Python loop took {before:.0f} ms before the run and "
                           f"{after:.0f} ms after"}
    args.out.mkdir(parents=True, exist_ok=True)
    results = targets.verdicts(rows, os.cpu_count() or 1)
    (args.out / "latest.json").write_text(json.dumps(
        {"meta": meta, "rows": [asdict(r) for r in rows],
         "targets": [asdict(v) for v in results]}, indent=1))
    table = markdown(rows, meta) + "\n" + targets.markdown(results)
    (args.out / "latest.md").write_text(table)
    print(table)
    return 1 if any(r.errors for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
