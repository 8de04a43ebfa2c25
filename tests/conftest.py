"""Shared fixtures: the real gateway and the project's simulator on loopback ports,
served from a background thread so that sync and async SDK clients can call them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.keys import METRICS, RUNTIME
from gateway.server import start
from gateway.simulator import SIMULATOR, Simulator, SimulatorSettings, create_simulator
from policies.auth import hash_key

GATEWAY = [sys.executable, "-m", "gateway"]  # the CLI, as a real process
KEY_A = "key-team-a"  # may use chat, embed
KEY_B = "key-team-b"  # may use everything
UPSTREAM_KEY = "upstream-secret"
OPENAI_KEY = "openai-upstream-secret"


def default_config(sim: str) -> dict[str, Any]:
    return {
        # The simulator's own control headers (x-sim-fault, x-sim-reply, ...) cross.
        "server": {"forward_request_headers": ["x-sim-*"]},
        "consumers": [
            {"name": "team-a", "api_keys": [hash_key(KEY_A)], "deployments": ["chat", "embed"]},
            {"name": "team-b", "api_keys": [hash_key(KEY_B)], "deployments": ["*"]},
        ],
        "deployments": [
            {"name": "chat", "model": "gpt-4o-mini", "backends": [
                {"url": sim, "api": "azure-openai", "deployment": "gpt4o-mini-east",
                 "api_version": "2024-10-21", "auth": {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}}]},
            {"name": "mistral", "model": "mistral-large-2411", "provider": "Mistral", "backends": [
                {"url": sim, "api": "azure-ai-inference",
                 "auth": {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}}]},
            {"name": "oss", "model": "llama-3.1-8b", "backends": [
                {"url": sim + "/v1", "api": "openai",
                 "auth": {"type": "api-key", "key_env": "TEST_OPENAI_KEY"}}]},
            {"name": "embed", "model": "text-embedding-3-small", "model_type": "embeddings",
             "backends": [{"url": sim, "api": "azure-openai", "deployment": "emb",
                           "auth": {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}}]},
            {"name": "cohere-embed", "model": "embed-english-v3.0", "model_type": "embeddings",
             "provider": "Cohere", "backends": [
                 {"url": sim, "api": "azure-ai-inference",
                  "auth": {"type": "api-key", "key_env": "TEST_UPSTREAM_KEY"}}]},
        ],
    }


# One strict SSE event: `data: <json>` or `data: [DONE]`, then a blank line.
EVENT = re.compile(rb"data: (\{.*?\}|\[DONE\])\n\n", re.S)


async def post_raw(url: str, body: dict[str, Any], **headers: str) -> bytes:
    """POST as team-a (plus `headers`) and return the raw response body."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(
        url, json=body, headers={"api-key": KEY_A, **headers}
    ) as response:
        return await response.read()


def with_timeouts(**timeouts: float) -> Callable[[str], dict[str, Any]]:
    """The default config with these timeouts on the `chat` deployment's backend."""

    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["deployments"][0]["backends"][0]["timeouts"] = timeouts
        return config

    return make


class Stack:
    """A simulator and a gateway in one background event loop."""

    def __init__(self, config: Callable[[str], dict[str, Any]], sim: SimulatorSettings) -> None:
        self._config, self._sim_settings = config, sim
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runners: list[web.AppRunner] = []
        self.log = io.BytesIO()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> Stack:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.sim_app = create_simulator(self._sim_settings)
        runner, sim_port = await start(self.sim_app, "127.0.0.1", 0)
        self._runners.append(runner)
        self.sim_url = f"http://127.0.0.1:{sim_port}"
        self.config = GatewayConfig(**self._config(self.sim_url))
        self.app = create_app(self.config, access_log=AccessLog(self.log))
        runner, port = await start(self.app, "127.0.0.1", 0, shutdown_timeout=1,
                                   limits=self.config.server)
        self._runners.append(runner)
        self.url = f"http://127.0.0.1:{port}"

    def access_log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]

    @property
    def sim(self) -> Simulator:
        return self.sim_app[SIMULATOR]

    @property
    def runtime(self) -> Any:
        return self.app[RUNTIME]

    @property
    def metrics(self) -> Any:
        return self.app[METRICS]

    def stop(self) -> None:
        async def _stop() -> None:
            for runner in reversed(self._runners):
                await runner.cleanup()

        self.run(_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@contextlib.contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Serve any aiohttp app on a loopback port from its own thread; yields its URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner, port = asyncio.run_coroutine_threadsafe(start(app, "127.0.0.1", 0), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@contextlib.contextmanager
def managed_identity(monkeypatch: pytest.MonkeyPatch, token: Callable[[], str]) -> Iterator[None]:
    """An App Service-style managed-identity endpoint (IDENTITY_ENDPOINT) handing out
    `token()`, for the real azure-identity ManagedIdentityCredential."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"access_token": token(), "token_type": "Bearer",
                                  "expires_on": str(int(time.time()) + 3600),
                                  "resource": request.query["resource"]})

    app = web.Application()
    app.router.add_get("/msi/token", handle)
    with serve_in_thread(app) as url:
        monkeypatch.setenv("IDENTITY_ENDPOINT", url + "/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "h")
        yield


def free_port() -> int:
    """A free port that no outgoing connection can take before the server binds it:
    it and its Redis Cluster bus port (+10000) both lie below the ephemeral range."""
    while True:
        port = random.randint(20000, 22700)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class RedisServer:
    """A real redis-server process on a loopback port, that tests may stop and start."""

    def __init__(self, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.extra = extra
        # Its own folder: a replica writes the RDB it syncs, and a later server
        # started in the same folder would load it.
        self.dir = tempfile.mkdtemp(prefix="redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def remove(self) -> None:
        """Stop for good and delete its folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    for _ in range(150):
        if proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()}")
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("did not come up")


@pytest.fixture(autouse=True)
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test its own SQLite database, for the gateways it runs in process and the
    ones it starts as processes (the environment overrides any config file)."""
    url = f"sqlite:///{tmp_path}/gateway.db"
    monkeypatch.setenv("MODEL_GATEWAY_DATABASE__URL", url)
    return url


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.remove()


@pytest.fixture
def upstream_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_UPSTREAM_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("TEST_OPENAI_KEY", OPENAI_KEY)


@pytest.fixture
def make_stack(upstream_keys: None) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(
        config: Callable[[str], dict[str, Any]] = default_config,
        sim: SimulatorSettings | None = None,
    ) -> Stack:
        settings = sim or SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY))
        stack = Stack(config, settings).start()
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()
