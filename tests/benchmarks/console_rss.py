"""What the console costs an idle gateway in resident memory. A measurement, not a test:

    python -m tests.benchmarks.console_rss [--baseline SRC] [--runs 3]

Starts `model-gateway serve` as a real process with the admin API (and so the console)
enabled, waits until it is ready and its RSS has settled, and reads VmRSS from /proc:
idle, and again after one visit to each console page (Jinja2 and the templates loaded).
With --baseline, a source tree of the gateway without the console (for instance
`git archive <commit> | tar -x -C /tmp/base`) is measured the same way, first, and the
growth is the difference of the idle figures (medians of --runs starts each)."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from policies.auth import hash_key
from tests.conftest import free_port

ADMIN_KEY = "rss-admin-key"


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found
    return int(found.group(1))


def settled(pid: int, timeout: float = 30.0) -> int:
    """The RSS once two readings a second apart agree within 64 KiB."""
    last = rss_kib(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = rss_kib(pid)
        if abs(now - last) <= 64:
            return now
        last = now
    return last


def start(folder: Path, source: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "database": {"url": f"sqlite:///{folder}/gw.db"},
        "ledger": {"spool_dir": str(folder / "spool")},
        "admin": {"api_keys": {"ops": hash_key(ADMIN_KEY)}},
        "deployments": [{"name": "chat", "model": "m", "backends": [
            {"url": "http://127.0.0.1:9/v1", "api": "openai"}]}],
    }
    path = folder / "gw.json"
    path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_GATEWAY_")}
    if source is not None:  # the baseline's code, ahead of the installed one
        env["PYTHONPATH"] = str(source)
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(path)],
                            env=env, cwd=source or Path.cwd(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/readyz", timeout=1).close()
            return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the gateway did not start") from None
            time.sleep(0.1)


def visit_console(url: str) -> None:
    """Sign in and open every page once, as a browser would."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(url + "/ui/login", timeout=30).read().decode()
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({"key": ADMIN_KEY, "csrf": token}).encode()
    opener.open(urllib.request.Request(url + "/ui/login", data=form,
                                       headers={"Sec-Fetch-Site": "same-origin"}), timeout=30).read()
    for path in ("/ui/usage", "/ui/consumers", "/ui/consumers/new", "/ui/deployments",
                 "/ui/config", "/ui/static/console.css", "/ui/static/console.js"):
        opener.open(url + path, timeout=30).read()


def measure(source: Path | None, console: bool) -> tuple[int, int | None]:
    with tempfile.TemporaryDirectory(prefix="console-rss-") as tmp:
        proc, url = start(Path(tmp), source)
        try:
            idle = settled(proc.pid)
            after = None
            if console:
                visit_console(url)
                after = settled(proc.pid)
            return idle, after
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="a source tree without the console")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = [measure(args.baseline, False)[0] for _ in range(args.runs)] if args.baseline else []
    runs = [measure(None, True) for _ in range(args.runs)]
    idle = statistics.median(r[0] for r in runs)
    visited = statistics.median(r[1] or 0 for r in runs)
    print(f"console enabled, idle:           {idle / 1024:.1f} MiB  (runs: "
          f"{', '.join(f'{r[0] / 1024:.1f}' for r in runs)})")
    print(f"after one visit to every page:   {visited / 1024:.1f} MiB  (+{(visited - idle) / 1024:.1f})")
    if base:
        before = statistics.median(base)
        print(f"baseline (no console), idle:     {before / 1024:.1f} MiB  (runs: "
              f"{', '.join(f'{b / 1024:.1f}' for b in base)})")
        print(f"growth of the idle gateway:      {(idle - before) / 1024:+.1f} MiB")


if __name__ == "__main__":
    main()
