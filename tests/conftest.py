"""Shared fixtures: the real gateway and the project's simulator on loopback ports,
served from a background thread so that sync and async SDK clients can call them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import re
import secrets
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

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.ops.accesslog import AccessLog
from gateway.ops.metrics import METRICS
from gateway.runtime.live import LIVE
from gateway.server import start
from gateway.simulator import SIMULATOR, Simulator, SimulatorSettings, create_simulator
from policies.auth import hash_key
from tests.waiting import START_S, wait_for

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

    def logged(self, count: int) -> list[dict[str, Any]]:
        """The access log once it has `count` lines (from a thread or a synchronous test):
        a stream's line is written after its last byte went out, so a client can hold the
        whole answer before the line is there."""
        def enough() -> list[dict[str, Any]] | None:
            lines = self.access_log()
            return lines if len(lines) >= count else None

        return wait_for(enough, what=f"{count} access log lines")

    @property
    def sim(self) -> Simulator:
        return self.sim_app[SIMULATOR]

    @property
    def runtime(self) -> Any:
        return self.app[LIVE].runtime

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


# Entra test identities: the tenant, an app, a user (object id), a group, the audience.
TENANT = "aaaaaaaa-0000-0000-0000-000000000001"
APP = "cccccccc-0000-0000-0000-000000000003"
OID = "bbbbbbbb-0000-0000-0000-000000000002"
GROUP = "dddddddd-0000-0000-0000-000000000004"
AUD = "https://cognitiveservices.azure.com"


class Keys:
    """An RS256 signing key, its JWKS and Entra-shaped access tokens signed with it."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.served: list[dict[str, Any]] = [self.jwk(self.private, self.kid)]
        self.fetches = 0

    @staticmethod
    def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        return {**data, "kid": kid, "use": "sig", "alg": "RS256"}

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"keys": self.served})

    def token(self, key: rsa.RSAPrivateKey | None = None, kid: str | None = None,
              **claims: Any) -> str:
        now = int(time.time())
        payload = {"aud": AUD, "iss": f"https://sts.windows.net/{TENANT}/", "tid": TENANT,
                   "oid": OID, "appid": APP, "iat": now, "nbf": now, "exp": now + 3600,
                   "name": "Jane Doe", "upn": "jane@contoso.com", "ver": "1.0", **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.private, algorithm="RS256",
                          headers={"kid": kid or self.kid})


@pytest.fixture
def keys() -> Iterator[tuple[Keys, str]]:
    """The keys, and the URL of a local JWKS serving them."""
    k = Keys()
    app = web.Application()
    app.router.add_get("/keys", k.handle)
    with serve_in_thread(app) as url:
        yield k, url + "/keys"


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

        def pong() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
            return False

        wait_for(pong, START_S, f"redis-server on port {self.port} to answer PING", interval=0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def remove(self) -> None:
        """Stop for good and delete its folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_bin(name: str) -> str:
    """A PostgreSQL server binary: on PATH, or where Debian's packages put it."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    raise RuntimeError(f"{name} not found: install Debian's postgresql package")


class PostgresServer:
    """A real PostgreSQL server of its own (initdb in a temporary folder), on a loopback
    port, with password authentication: the gateway reads the password as it would in
    production (`database.password_env`). As root, it runs as the `postgres` user, since
    PostgreSQL refuses to run as root."""

    PASSWORD = "pg-test-password"

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-"))
        self.data = self.dir / "data"
        self.user: str | None = "postgres" if os.geteuid() == 0 else None
        pwfile = self.dir / "pw"
        pwfile.write_text(self.PASSWORD)
        if self.user:
            shutil.chown(self.dir, self.user)
            shutil.chown(pwfile, self.user)
        self._run(_postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def _run(self, *argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True, timeout=120, user=self.user)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_postgres_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=self.user)

        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return True
            return False

        wait_for(listening, START_S, f"postgres on port {self.port} to listen", interval=0.05)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str) -> str:
        import asyncpg

        for _ in range(50):  # the server accepts TCP a little before it takes logins
            try:
                connection = await asyncpg.connect(self.url(), password=self.PASSWORD)
                break
            except (OSError, asyncpg.CannotConnectNowError):
                await asyncio.sleep(0.1)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            self.proc.wait(30)
            self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    """Until the process at `url` answers /healthz (or exits, which fails at once)."""
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()}")
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return True
        except OSError:
            return False

    wait_for(up, START_S, f"{url}/healthz to answer", interval=0.1)


def start_simulator(background: list[subprocess.Popen[str]], *extra: str) -> str:
    """The simulator as a process of its own; its URL."""
    port = free_port()
    sim = subprocess.Popen([*GATEWAY, "simulate", "--port", str(port), *extra],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    background.append(sim)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, sim)
    return url


def start_gateway(config: dict[str, Any], folder: Path, background: list[subprocess.Popen[str]],
                  *args: str, name: str = "gw") -> tuple[str, subprocess.Popen[str]]:
    """`model-gateway serve` as a process with `config` (its server.port set here); its
    URL and the process. Its log goes to `folder/<name>.log`."""
    port = free_port()
    config = {**config, "server": {**config.get("server", {}), "host": "127.0.0.1", "port": port}}
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(config))
    log = (folder / f"{name}.log").open("a")
    proc = subprocess.Popen([*GATEWAY, "serve", "--config", str(path), *args],
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    background.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return url, proc


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.remove()


@pytest.fixture
def postgres(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database of its own on the session's PostgreSQL server; its URL (the
    password in PG_TEST_PASSWORD, for `database.password_env`). Gateway processes the
    test starts use it (the environment overrides their config files)."""
    monkeypatch.setenv("PG_TEST_PASSWORD", PostgresServer.PASSWORD)
    name = "t" + secrets.token_hex(6)
    url = asyncio.run(postgres_server.create_database(name))
    monkeypatch.setenv("MODEL_GATEWAY_DATABASE__URL", url)
    monkeypatch.setenv("MODEL_GATEWAY_DATABASE__PASSWORD_ENV", "PG_TEST_PASSWORD")
    return url


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
