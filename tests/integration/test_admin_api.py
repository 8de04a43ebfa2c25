"""The admin API on a real gateway (SQLite, the embedded default): who may use it,
consumers and keys made, changed and revoked at runtime, expiry, the audit trail, and
that no key or digest is shown after the key's creation, stored in the audit trail or
logged."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openai import AuthenticationError, NotFoundError, OpenAI

from policies.auth import hash_key
from tests.conftest import (
    APP,
    KEY_A,
    KEY_B,
    TENANT,
    Keys,
    Stack,
    default_config,
    free_port,
    start_gateway,
    start_simulator,
)
from tests.waiting import until, wait_for

ADMIN_KEY = "admin-key-ops-1"


def admin_config(jwks: str | None = None) -> Callable[[str], dict[str, Any]]:
    def make(sim: str) -> dict[str, Any]:
        config = default_config(sim)
        config["admin"] = {"api_keys": {"ops": hash_key(ADMIN_KEY)}, "refresh_seconds": 0.2}
        config["ledger"] = {"flush_seconds": 0.1}
        if jwks:
            config["auth"] = {"entra": {"tenant_ids": [TENANT], "jwks_url": jwks}}
            config["admin"]["entra"] = {"roles": ["Gateway.Admin"]}
            config["consumers"].append({"name": "mi-app", "entra": {"app_ids": [APP]},
                                        "deployments": ["chat"]})
        return config
    return make


async def call(stack: Stack, method: str, path: str, body: Any = None,
               key: str | None = ADMIN_KEY, **headers: str) -> tuple[int, Any]:
    if key is not None:
        headers["api-key"] = key
    async with aiohttp.ClientSession() as s, s.request(
            method, stack.url + path, json=body, headers=headers) as r:
        text = await r.text()
        return r.status, (json.loads(text) if text and "json" in r.content_type else text)


def chat(stack: Stack, key: str) -> str:
    client = OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0)
    answer = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content or ""


@pytest.fixture
def admin(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(admin_config())


async def test_refused_without_an_admin_credential(admin: Stack, keys: tuple[Keys, str],
                                                   make_stack: Callable[..., Stack]) -> None:
    status, body = await call(admin, "GET", "/admin/v1/consumers", key=None)
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"
    assert "needs an admin key or an Entra token" in body["error"]["message"]
    # A consumer's key is not an admin's, even on the consumer's own record.
    for path in ("/admin/v1/consumers", "/admin/v1/audit", "/admin/v1/usage",
                 "/admin/v1/consumers/team-a/usage"):
        status, body = await call(admin, "GET", path, key=KEY_A)
        assert status == 401, path
        assert "admin" in body["error"]["message"]
    status, _ = await call(admin, "POST", "/admin/v1/consumers",
                           {"name": "x", "deployments": ["chat"]}, key=KEY_A)
    assert status == 401

    signer, jwks = keys
    entra = make_stack(admin_config(jwks))
    token = signer.token(roles=["Gateway.Reader"])
    status, body = await call(entra, "GET", "/admin/v1/consumers", key=None,
                              Authorization=f"Bearer {token}")
    assert status == 403
    assert "Gateway.Admin" in body["error"]["message"]
    no_roles = signer.token()
    status, _ = await call(entra, "GET", "/admin/v1/consumers", key=None,
                           Authorization=f"Bearer {no_roles}")
    assert status == 403
    granted = signer.token(roles=["Gateway.Admin"])
    status, body = await call(entra, "POST", "/admin/v1/consumers",
                              {"name": "by-token", "deployments": ["chat"]}, key=None,
                              Authorization=f"Bearer {granted}")
    assert status == 201, body
    status, audit = await call(entra, "GET", "/admin/v1/audit")
    assert audit["data"][0]["actor"].startswith("entra:")


async def test_not_there_when_not_configured(stack: Stack) -> None:
    status, body = await call(stack, "GET", "/admin/v1/consumers")
    assert status == 404
    assert "admin" in body["error"]["message"]


async def test_consumer_and_key_lifecycle(admin: Stack) -> None:
    status, made = await call(admin, "POST", "/admin/v1/consumers", {
        "name": "analytics", "deployments": ["chat"], "metadata": {"cost_center": "4711"},
        "limits": {"requests_per_minute": 600}, "quotas": {"tokens_per_day": 100000}})
    assert status == 201, made
    assert made["source"] == "database" and made["metadata"] == {"cost_center": "4711"}

    # A name in the config file cannot be made again, nor changed here.
    status, body = await call(admin, "POST", "/admin/v1/consumers",
                              {"name": "team-a", "deployments": ["chat"]})
    assert status == 409 and "config file" in body["error"]["message"]
    status, _ = await call(admin, "PATCH", "/admin/v1/consumers/team-a", {"deployments": ["*"]})
    assert status == 409
    status, _ = await call(admin, "POST", "/admin/v1/consumers",
                           {"name": "analytics", "deployments": ["chat"]})
    assert status == 409

    status, listing = await call(admin, "GET", "/admin/v1/consumers")
    by_name = {c["name"]: c for c in listing["data"]}
    assert by_name["team-a"]["source"] == "config" and by_name["team-a"]["read_only"]
    assert by_name["analytics"]["source"] == "database"
    assert "api_keys" not in by_name["team-a"]

    status, key = await call(admin, "POST", "/admin/v1/consumers/analytics/keys",
                             {"description": "ci job"})
    assert status == 201
    assert key["key"].startswith(key["prefix"]) and key["id"] and key["expires_at"] is None
    assert chat(admin, key["key"])

    # Listed without the secret; the model may not be used after its deployments change.
    status, listed = await call(admin, "GET", "/admin/v1/consumers/analytics/keys")
    assert [k["id"] for k in listed["data"]] == [key["id"]]
    assert key["key"] not in json.dumps(listed) and "sha256" not in json.dumps(listed)
    status, patched = await call(admin, "PATCH", "/admin/v1/consumers/analytics",
                                 {"deployments": ["embed"]})
    assert status == 200 and patched["deployments"] == ["embed"]
    assert patched["metadata"] == {"cost_center": "4711"}  # a PATCH keeps what it does not name
    client = OpenAI(base_url=admin.url + "/v1", api_key=key["key"], max_retries=0)
    with pytest.raises(NotFoundError, match="you may use here are: embed"):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert client.embeddings.create(model="embed", input="x").data

    status, _ = await call(admin, "DELETE", f"/admin/v1/consumers/analytics/keys/{key['id']}")
    assert status == 200
    with pytest.raises(AuthenticationError):
        client.embeddings.create(model="embed", input="x")
    status, _ = await call(admin, "DELETE", f"/admin/v1/consumers/analytics/keys/{key['id']}")
    assert status == 404  # revoked already

    status, _ = await call(admin, "DELETE", "/admin/v1/consumers/analytics")
    assert status == 200
    status, _ = await call(admin, "GET", "/admin/v1/consumers/analytics")
    assert status == 404


async def test_bad_bodies_get_the_error_shape(admin: Stack) -> None:
    cases: list[tuple[Any, str]] = [
        ({"name": "x"}, "deployments"),
        ({"name": "bad name!", "deployments": ["chat"]}, "name"),
        ({"name": "x", "deployments": ["nope"]}, "nope"),
        ({"name": "x", "deployments": ["chat"], "quotas": {"tokens_per_day": -1}}, "quotas"),
        ({"name": "x", "deployments": ["chat"], "surprise": 1}, "surprise"),
        ([1, 2], ""),
    ]
    for body, mentioned in cases:
        status, answer = await call(admin, "POST", "/admin/v1/consumers", body)
        assert status == 400, (body, answer)
        assert mentioned in answer["error"]["message"] + str(answer["error"].get("param"))
    async with aiohttp.ClientSession() as s, s.post(
            admin.url + "/admin/v1/consumers", data=b"{not json",
            headers={"api-key": ADMIN_KEY, "Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["type"] == "invalid_request_error"
    status, _ = await call(admin, "POST", "/admin/v1/consumers/none/keys", {})
    assert status == 404
    status, body = await call(admin, "POST", "/admin/v1/consumers", {
        "name": "k", "deployments": ["chat"]})
    status, body = await call(admin, "POST", "/admin/v1/consumers/k/keys",
                              {"expires_at": "tomorrow"})
    assert status == 400 and "expires_at" in body["error"]["message"]


async def test_an_expired_key_is_refused_saying_so(admin: Stack) -> None:
    await call(admin, "POST", "/admin/v1/consumers", {"name": "temp", "deployments": ["chat"]})
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=3)
    status, key = await call(admin, "POST", "/admin/v1/consumers/temp/keys",
                             {"expires_at": soon.isoformat()})
    assert status == 201 and key["expires_at"]
    assert chat(admin, key["key"])
    client = OpenAI(base_url=admin.url + "/v1", api_key=key["key"], max_retries=0)

    def refusal() -> AuthenticationError | None:
        try:
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
        except AuthenticationError as error:
            return error
        return None

    refused = await asyncio.to_thread(wait_for, refusal, what="the key refused", interval=0.2)
    assert datetime.datetime.now(datetime.UTC) >= soon  # not before its time
    assert refused.status_code == 401
    assert "expired" in refused.message
    assert refused.code == "expired_api_key"


async def test_audit_trail_and_no_secret_anywhere(admin: Stack,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await call(admin, "POST", "/admin/v1/consumers", {"name": "audited", "deployments": ["*"]})
    status, key = await call(admin, "POST", "/admin/v1/consumers/audited/keys", {})
    secret, digest = key["key"], hash_key(key["key"])
    chat(admin, secret)
    await call(admin, "PATCH", "/admin/v1/consumers/audited", {"quotas": {"requests_per_day": 5}})
    await call(admin, "DELETE", f"/admin/v1/consumers/audited/keys/{key['id']}")
    await call(admin, "DELETE", "/admin/v1/consumers/audited")

    status, audit = await call(admin, "GET", "/admin/v1/audit")
    assert status == 200
    actions = [(a["action"], a["target"], a["actor"]) for a in reversed(audit["data"])]
    assert actions == [("consumer.create", "audited", "key:ops"), ("key.create", "audited", "key:ops"),
                       ("consumer.update", "audited", "key:ops"), ("key.revoke", "audited", "key:ops"),
                       ("consumer.delete", "audited", "key:ops")]
    assert all(a["at"] for a in audit["data"])
    status, page = await call(admin, "GET", f"/admin/v1/audit?limit=2&before={audit['data'][0]['id']}")
    assert [a["action"] for a in page["data"]] == ["key.revoke", "consumer.update"]

    # The key and its digest: nowhere but in the one answer that made it.
    everything = [json.dumps(audit), admin.log.getvalue().decode(), caplog.text]
    for path in ("/admin/v1/consumers", "/admin/v1/usage"):
        everything.append(json.dumps((await call(admin, "GET", path))[1]))
    import sqlite3

    from gateway.runtime.live import LIVE
    url = admin.app[LIVE].config.database.url.removeprefix("sqlite:///")
    with sqlite3.connect(url) as db:
        everything.append(json.dumps(db.execute("SELECT * FROM audit_log").fetchall(), default=str))
    for text in everything:
        assert secret not in text
        assert digest not in text and digest.removeprefix("sha256:") not in text
        assert ADMIN_KEY not in text and hash_key(ADMIN_KEY) not in text


async def test_the_admin_api_on_a_port_of_its_own(
        tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    sim = start_simulator(background)
    admin_port = free_port()
    config = {
        "admin": {"api_keys": {"ops": hash_key(ADMIN_KEY)}, "port": admin_port},
        "consumers": [{"name": "team-a", "api_keys": [hash_key(KEY_A)], "deployments": ["*"]}],
        "deployments": [{"name": "chat", "model": "m", "backends": [
            {"url": sim + "/v1", "api": "openai"}]}],
    }
    url, _ = start_gateway(config, tmp_path, background)
    headers = {"api-key": ADMIN_KEY}
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/admin/v1/consumers", headers=headers) as r:
            assert r.status == 404
            assert f"port {admin_port} only" in (await r.json())["error"]["message"]
        async with s.get(f"http://127.0.0.1:{admin_port}/admin/v1/consumers",
                         headers=headers) as r:
            assert r.status == 200
            assert [c["name"] for c in (await r.json())["data"]] == ["team-a"]
        async with s.post(url + "/v1/chat/completions", headers={"api-key": KEY_A},
                          json={"model": "chat", "messages": [{"role": "user", "content": "x"}]}
                          ) as r:
            assert r.status == 200


async def test_usage_reports_and_a_consumers_own_usage(admin: Stack) -> None:
    for key, n in ((KEY_A, 2), (KEY_B, 1)):
        for _ in range(n):
            chat(admin, key)

    async def reported() -> Any:  # the ledger trails by its flush interval
        status, report = await call(admin, "GET", "/admin/v1/usage?group_by=month")
        assert status == 200
        return report if report["totals"]["requests"] == 3 else None

    report = await until(reported, what="the three requests in the usage report")
    by_consumer = {r["consumer"]: r for r in report["data"]}
    assert by_consumer["team-a"]["requests"] == 2 and by_consumer["team-b"]["requests"] == 1
    assert report["totals"]["completion_tokens"] == 3 * 16
    status, only_a = await call(admin, "GET", "/admin/v1/usage?consumer=team-a")
    assert [r["consumer"] for r in only_a["data"]] == ["team-a"]

    async with aiohttp.ClientSession() as s, s.get(
            admin.url + "/admin/v1/usage?group_by=day",
            headers={"api-key": ADMIN_KEY, "Accept": "text/csv"}) as r:
        assert r.status == 200 and r.content_type == "text/csv"
        lines = (await r.text()).strip().splitlines()
    assert lines[0].startswith("consumer,deployment,period,requests,")
    assert sorted(line.split(",")[0] for line in lines[1:]) == ["team-a", "team-b"]

    status, bad = await call(admin, "GET", "/admin/v1/usage?from=yesterday")
    assert status == 400 and bad["error"]["param"] == "from"

    status, current = await call(admin, "GET", "/admin/v1/consumers/team-a/usage")
    assert status == 200 and current["periods"]["month"]["requests"] == 2

    # A consumer sees its own figures with its own key, and only its own.
    status, mine = await call(admin, "GET", "/v1/usage?consumer=team-b", key=KEY_A)
    assert status == 200 and mine["consumer"] == "team-a"
    assert mine["periods"]["day"]["requests"] == 2
    status, _ = await call(admin, "GET", "/v1/usage", key=None)
    assert status == 401
