"""The real agent CLIs against `model-gateway demo`, driven by README.md's own examples
("Any client on any model"), run as written there with the demo's port: Claude Code
headless (`claude -p`) on the GPT and Mistral aliases, Codex (`codex exec`) on the Mistral
and Claude aliases, and the openai SDK's chat on the Claude alias. Each must finish its
turn without error, every call it made answered 200 through translation (the demo's
access log says which APIs), and every connection that is not to the gateway must go to
a trap proxy that sees none: the settings the README gives keep the CLIs on loopback.

The CLIs come from the npm registry at the versions tests/agents/package-lock.json pins
(scripts/test installs them; this module does when they are missing). They are skipped
only when they cannot be installed, and never under CI."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.demo import banner
from gateway.simulator.shapes import WORDS
from tests.conftest import GATEWAY, free_port

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "tests" / "agents"
BIN = AGENTS / "node_modules" / ".bin"
README_URL = "http://127.0.0.1:8080"
# One CLI run: seconds, generous for a busy 2-core machine (a run takes a few here).
DEADLINE = 300


def readme_snippet(marker: str) -> str:
    """The README's example of "Any client on any model" that contains `marker`."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Any client on any model\n", 1)[1].split("\n## ", 1)[0]
    found = [block for block in re.findall(r"```sh\n(.*?)```", section, re.S) if marker in block]
    assert len(found) == 1, f"README.md has no single example with {marker!r}"
    return found[0]


# --- the CLIs ---------------------------------------------------------------------------
def _pinned() -> dict[str, str]:
    return dict(json.loads((AGENTS / "package.json").read_text())["dependencies"])


def _installed() -> bool:
    """Each pinned package at its version, and both commands there."""
    for name, version in _pinned().items():
        manifest = AGENTS / "node_modules" / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text()).get("version") != version:
            return False
    return all((BIN / command).exists() for command in ("claude", "codex"))


@pytest.fixture(scope="session")
def clis() -> Path:
    """The folder of the `claude` and `codex` commands, installed with npm if they are
    not; a failure saying why when they cannot be (scripts/test installs them: a test that
    skipped without them could not fail)."""
    if not _installed():
        npm = shutil.which("npm")
        problem = "npm is not on PATH"
        if npm is not None:
            done = subprocess.run([npm, "ci", "--prefix", str(AGENTS), "--no-audit", "--no-fund",
                                   "--loglevel=error"], capture_output=True, text=True, timeout=900)
            problem = f"npm ci failed: {done.stderr.strip()[-2000:]}" if done.returncode else ""
            if not problem:  # what scripts/test checks before installing again
                lock = hashlib.sha256((AGENTS / "package-lock.json").read_bytes()).hexdigest()
                (AGENTS / "node_modules" / ".installed").write_text(lock + "\n")
        if problem or not _installed():
            message = (f"The agent CLIs (tests/agents/package.json) cannot be installed: "
                       f"{problem or 'npm ci left them missing'}. scripts/test installs them.")
            pytest.fail(message)
    return BIN


# --- no network but loopback -------------------------------------------------------------
class Trap(socketserver.ThreadingTCPServer):
    """A proxy on loopback that every connection not to the gateway is sent to (the
    CLIs honour HTTPS_PROXY, NO_PROXY exempts loopback): it records the request line
    (`CONNECT host:443 ...`) and refuses."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), _TrapHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _TrapHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, Trap)
        self.server.seen.append(self.rfile.readline(4096).decode(errors="replace").strip())
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def trap() -> Iterator[Trap]:
    server = Trap()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def environment(tmp_path: Path, trap: Trap) -> dict[str, str]:
    """What a snippet runs with: a home of its own (no one's ~/.claude or ~/.codex), the
    CLIs and this Python first on PATH, every proxy variable at the trap, loopback exempt,
    and nothing else of this process's environment."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    path = os.pathsep.join([str(BIN), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proxies = {name: trap.url for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY",
                                           "https_proxy", "http_proxy", "all_proxy")}
    return {"PATH": path, "HOME": str(home), "TMPDIR": str(tmp_path), "LANG": "C.UTF-8", "TERM": "dumb",
            **proxies, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


# --- the demo ----------------------------------------------------------------------------
class Demo:
    """`model-gateway demo` as a process; its access log once stopped."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = folder / "demo.out"
        self.proc = subprocess.Popen([*GATEWAY, "demo", "--port", str(self.port)], text=True,
                                     stdout=self.out.open("w"), stderr=subprocess.STDOUT)
        end = time.monotonic() + 60  # a busy machine starts it slowly
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the demo exited: {self.out.read_text()}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url + "/healthz", timeout=2)
                break
            assert time.monotonic() < end, "the demo did not come up in 60 s"
            time.sleep(0.1)

    def stop(self) -> list[dict[str, Any]]:
        """Stop it (as Ctrl-C does) and return its access log's lines."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.startswith("{")]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    yield running
    running.stop()


def run(script: str, demo: Demo, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A README snippet in bash, with the demo's port, as its own process group: waited
    for up to DEADLINE, then whatever it left running is ended."""
    script = script.replace(README_URL, demo.url)
    proc = subprocess.Popen(["bash", "-eu", "-c", script], cwd=cwd, env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"not done in {DEADLINE} s:\n{out}\n{err}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def simulated(text: str) -> bool:
    """Whether `text` is an answer of the simulator's (its words and nothing else)."""
    return bool(text.split()) and set(text.split()) <= set(WORDS)


def calls(log: list[dict[str, Any]], route: str) -> list[dict[str, Any]]:
    return [line for line in log if line.get("route") == route]


# --- the tests ---------------------------------------------------------------------------
@pytest.mark.parametrize("alias", ["gpt-5-mini", "mistral-large"])
def test_claude_code_headless_on_a_chat_alias(clis: Path, demo: Demo, trap: Trap, tmp_path: Path,
                                              alias: str) -> None:
    done = run(readme_snippet("claude -p").replace("gpt-5-mini", alias), demo,
               environment(tmp_path, trap), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["is_error"] is False and answer["subtype"] == "success", answer
    assert simulated(answer["result"]), answer["result"]
    assert answer["usage"]["input_tokens"] > 0  # message_start's count, which Claude Code reads
    log = demo.stop()
    messages = calls(log, "/anthropic/v1/messages")
    # Every call answered, none refused (Claude Code retries a refusal without the field,
    # so a refusal would not show in its exit code).
    assert messages and [line["status"] for line in log] == [200] * len(log), log
    assert {(m["deployment"], m["api"], m["backend_api"]) for m in messages} == {
        (alias, "messages", "chat/completions")}
    assert trap.seen == []


@pytest.mark.parametrize("alias", ["mistral-large", "claude-sonnet-4-5"])
def test_codex_exec_on_a_chat_and_a_claude_alias(clis: Path, demo: Demo, trap: Trap, tmp_path: Path,
                                                 alias: str) -> None:
    done = run(readme_snippet("codex exec").replace("-m mistral-large", f"-m {alias}"), demo,
               environment(tmp_path, trap), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert simulated(done.stdout.strip().splitlines()[-1]), done.stdout + done.stderr
    log = demo.stop()
    responses = calls(log, "/v1/responses")
    assert responses and [line["status"] for line in log] == [200] * len(log), log
    backend = "messages" if alias.startswith("claude") else "chat/completions"
    assert {(r["deployment"], r["api"], r["backend_api"]) for r in responses} == {
        (alias, "responses", backend)}
    if alias.startswith("claude"):
        # The simulated Claude calls every tool Codex offers; Codex runs them (read-only)
        # and sends their outputs back, which Claude answers: a whole tool loop.
        assert len(responses) >= 2
    assert trap.seen == []


def test_openai_chat_on_the_claude_alias(demo: Demo, trap: Trap, tmp_path: Path) -> None:
    done = run(readme_snippet("from openai import OpenAI"), demo, environment(tmp_path, trap), tmp_path)
    assert done.returncode == 0, done.stderr
    assert simulated(done.stdout), done.stdout
    chats = calls(demo.stop(), "/v1/chat/completions")
    assert [(c["deployment"], c["api"], c["backend_api"], c["status"]) for c in chats] == [
        ("claude-sonnet-4-5", "chat.completions", "messages", 200)]
    assert trap.seen == []


def test_the_demo_banner_shows_the_readme_examples() -> None:
    shown = banner(README_URL)
    assert readme_snippet("from openai import OpenAI") in shown
    assert readme_snippet("claude -p") in shown
    assert readme_snippet("codex exec").strip().splitlines()[-1] in shown
