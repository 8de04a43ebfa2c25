"""Config options of docs/contract.md §3 that no other test sets, each shown as a user
sees it (tests/unit/gateway/test_config_options_tested.py keeps the list complete)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.simulator import Fault, SimulatorSettings, create_simulator
from tests.conftest import (
    AUD,
    KEY_A,
    KEY_B,
    OPENAI_KEY,
    UPSTREAM_KEY,
    Keys,
    PostgresServer,
    Stack,
    default_config,
    serve_in_thread,
    start_gateway,
)
from tests.integration.test_entra_inbound import chat as entra_chat
from tests.integration.test_entra_inbound import entra_config
from tests.waiting import until

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


async def post(stack: Stack, body: Any, key: str = KEY_A, raw: bytes | None = None,
               **headers: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
            stack.url + "/v1/chat/completions", json=None if raw else body, data=raw,
            headers={"api-key": key, "Content-Type": "application/json", **headers}) as r:
        return r.status, await r.json(content_type=None)


def server(**settings: Any) -> Any:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["server"].update(settings)
        return config
    return make


async def test_max_json_depth_and_items(make_stack: Any) -> None:
    stack: Stack = make_stack(server(max_json_depth=6, max_json_items=40))
    deep = {**CHAT, "metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}  # 7 levels
    status, body = await post(stack, deep)
    assert status == 400 and "nested deeper than 6 levels" in body["error"]["message"]
    many = {**CHAT, "stop": [str(i) for i in range(50)]}
    status, body = await post(stack, many)
    assert status == 400 and body["error"]["code"] == "invalid_request"
    assert "40" in body["error"]["message"]
    assert (await post(stack, CHAT))[0] == 200  # within both: served
    assert stack.sim.count == 1


async def test_max_inflight_per_consumer_is_the_default_cap(make_stack: Any) -> None:
    stack: Stack = make_stack(server(max_inflight_per_consumer=1))
    slow = asyncio.ensure_future(post(stack, CHAT, **{"x-sim-ttft-ms": "3000"}))
    await until(lambda: stack.sim.count == 1, what="the slow request in flight")
    status, body = await post(stack, CHAT)
    assert status == 429 and body["error"]["code"] == "too_many_requests"
    assert (await post(stack, CHAT, key=KEY_B))[0] == 200  # another consumer's own slot
    assert (await slow)[0] == 200
    assert (await post(stack, CHAT))[0] == 200  # the slot is free again


def routed(**routing: Any) -> Any:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["deployments"][0]["routing"] = routing
        return config
    return make


@pytest.fixture
def second_upstream() -> Iterator[tuple[Any, str]]:
    app = create_simulator(SimulatorSettings())
    with serve_in_thread(app) as url:
        yield app, url


def two_backends(url: str, **routing: Any) -> Any:
    def make(sim: str) -> dict[str, Any]:
        config = routed(**routing)(sim)
        first = config["deployments"][0]["backends"][0]
        config["deployments"][0]["backends"] = [
            {**first, "name": "b0", "priority": 0},
            {"url": url, "api": "azure-openai", "deployment": "d", "name": "b1", "priority": 1}]
        return config
    return make


async def test_retry_on_names_the_statuses_that_fail_over(make_stack: Any,
                                                          second_upstream: tuple[Any, str]) -> None:
    from gateway.simulator import SIMULATOR

    app, url = second_upstream
    stack: Stack = make_stack(two_backends(url, retry_on=[503]))
    stack.sim.settings.faults = [Fault(kind="500")]
    status, _body = await post(stack, CHAT)
    assert status == 500  # not in retry_on: the first backend's answer is the client's
    assert app[SIMULATOR].count == 0
    stack.sim.settings.faults = [Fault(kind="503")]
    status, _ = await post(stack, CHAT)
    assert status == 200 and app[SIMULATOR].count == 1  # in retry_on: the next backend


@pytest.mark.parametrize(("deadline", "status", "tried"), [(1, 504, 0), (120, 200, 1)])
async def test_deadline_seconds_ends_the_failover(make_stack: Any, deadline: float,
                                                  status: int, tried: int) -> None:
    """Three backends: the first never answers and times out after 1.2 s, the second
    fails, the third answers. Past a 1 s deadline no other backend is tried (the first's
    504 is the client's: no try starts after the deadline); within 120 s the failover
    goes on through the second to the third."""
    from gateway.simulator import SIMULATOR

    failing = create_simulator(SimulatorSettings(faults=[Fault(kind="500")]))
    healthy = create_simulator(SimulatorSettings())
    with serve_in_thread(failing) as second, serve_in_thread(healthy) as third:
        def make(sim: str) -> dict[str, Any]:
            config = routed(deadline_seconds=deadline)(sim)
            first = config["deployments"][0]["backends"][0]
            config["deployments"][0]["backends"] = [
                {**first, "name": "b0", "priority": 0, "timeouts": {"response": 1.2}},
                {"url": second, "api": "azure-openai", "deployment": "d", "name": "b1", "priority": 1},
                {"url": third, "api": "azure-openai", "deployment": "d", "name": "b2", "priority": 2}]
            return config

        stack: Stack = make_stack(make)
        stack.sim.settings.faults = [Fault(kind="hang")]
        got, body = await post(stack, CHAT)
        assert got == status, body
        assert failing[SIMULATOR].count == tried
        assert healthy[SIMULATOR].count == tried


async def test_the_breaker_opens_on_a_failure_ratio_over_its_window(make_stack: Any) -> None:
    breaker = {"failures": 1000, "failure_ratio": 0.5, "window_seconds": 600, "min_requests": 4}
    sim = SimulatorSettings(accept=(UPSTREAM_KEY, OPENAI_KEY), faults=[Fault(kind="500", every=2)])
    stack: Stack = make_stack(routed(breaker=breaker), sim)
    # Every other request fails: never two in a row, but half of them.
    statuses = [(await post(stack, CHAT))[0] for _ in range(3)]
    assert statuses == [200, 500, 200]  # 3 requests: fewer than min_requests, still closed
    assert (await post(stack, CHAT))[0] == 500  # the 4th: 2 of 4 failed, the ratio is reached
    status, body = await post(stack, CHAT)
    assert status == 503 and body["error"]["code"] == "no_healthy_backend"
    assert stack.sim.count == 4


async def test_connect_timeout(make_stack: Any) -> None:
    """A backend whose listen queue is full takes no connection: the connect timeout
    (0.5 s) ends the attempt, and the next backend answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue: later SYNs are dropped
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)

        def make(sim: str) -> dict[str, Any]:
            config = default_config(sim)
            good = config["deployments"][0]["backends"][0]
            config["deployments"][0]["backends"] = [
                {"url": f"http://127.0.0.1:{port}", "api": "azure-openai", "deployment": "d",
                 "name": "stuck", "priority": 0, "timeouts": {"connect": 0.5}},
                {**good, "name": "good", "priority": 1}]
            return config

        stack: Stack = make_stack(make)
        async with asyncio.timeout(60):
            status, _ = await post(stack, CHAT)
        assert status == 200 and stack.sim.count == 1
        assert stack.access_log()[-1]["backend"] == "good"
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_content_filter_budget_seconds(make_stack: Any) -> None:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["content_filters"] = {"slow": [
            {"type": "hook", "callable": "tests.integration.hooks:sluggish", "timeout_seconds": 30}]}
        config["content_filter_budget_seconds"] = 0.1
        config["deployments"][0]["content_filter"] = "slow"
        return config

    stack: Stack = make_stack(make)
    # The prompt's check takes 0.3 s: over the request's 0.1 s, the answer's is not run.
    status, body = await post(stack, CHAT)
    assert status == 503 and body["error"]["code"] == "policy_unavailable", body
    assert "time budget of 0.1 s" in body["error"]["message"]


async def test_entra_audiences_and_leeway(make_stack: Any, keys: tuple[Keys, str]) -> None:
    k, jwks = keys

    def make(sim: str) -> dict[str, Any]:
        config = entra_config(jwks)(sim)
        config["auth"]["entra"]["audiences"] = ["api://model-gateway", AUD]
        config["auth"]["entra"]["leeway_seconds"] = 120
        return config

    stack: Stack = make_stack(make)
    assert (await entra_chat(stack, k.token(aud="api://model-gateway")))[0] == 200
    assert (await entra_chat(stack, k.token(aud="api://someone-else")))[0] == 401
    now = int(time.time())
    # Expired a minute ago: within the 2 minutes of leeway. Five minutes ago: refused.
    assert (await entra_chat(stack, k.token(exp=now - 60)))[0] == 200
    status, body = await entra_chat(stack, k.token(exp=now - 300))
    assert status == 401 and "expired" in json.dumps(body).lower()


def test_database_password_file(postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                background: list[subprocess.Popen[str]]) -> None:
    """The PostgreSQL password read from a file (a mounted secret), not the environment."""
    monkeypatch.delenv("MODEL_GATEWAY_DATABASE__PASSWORD_ENV")
    secret = tmp_path / "pg-password"
    secret.write_text(PostgresServer.PASSWORD + "\n")
    config = default_config("http://127.0.0.1:9")
    config["database"] = {"url": postgres, "password_file": str(secret)}
    config["deployments"] = config["deployments"][:1]
    config["deployments"][0]["backends"][0].pop("auth")
    for consumer in config["consumers"]:
        consumer["deployments"] = ["chat"]
    _url, proc = start_gateway(config, tmp_path, background)  # it made the schema: it logged in
    assert "database empty: its schema made at" in (tmp_path / "gw.log").read_text()
    secret.write_text("not-the-password")
    proc.terminate()
    proc.wait(20)
    config["server"] = {}
    with pytest.raises(AssertionError, match="exited early"):
        start_gateway(config, tmp_path, background, name="wrong")
    wrong = (tmp_path / "wrong.log").read_text()
    assert "password" in wrong.lower()
    # Said where it first failed (the gateway's own check), then by the migration process;
    # the password itself is never in the log.
    assert "database not read here (" in wrong and "not-the-password" not in wrong
