"""Schema migrations against real databases (a file SQLite, a PostgreSQL server of the
test's own): from nothing to the newest schema, from the previous version with its
data kept, and a schema newer than the gateway refused."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import DatabaseConfig
from gateway.database.engine import make_engine
from gateway.database.migrate import HEAD, SchemaError, current, prepare, upgrade
from policies.auth import hash_key
from tests.conftest import GATEWAY

TABLES = {"stored_responses", "gateway_responses", "consumers", "api_keys", "audit_log", "usage",
          "usage_batches", "changes"}


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request: pytest.FixtureRequest, database: str) -> DatabaseConfig:
    if request.param == "sqlite":
        return DatabaseConfig(url=database)
    return DatabaseConfig(url=request.getfixturevalue("postgres"), password_env="PG_TEST_PASSWORD")


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as c:
        return set(await c.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_from_an_empty_database(config: DatabaseConfig) -> None:
    engine = make_engine(config)
    try:
        assert await current(engine) is None
        await prepare(engine, migrate=True)
        assert await current(engine) == HEAD
        assert await tables(engine) >= TABLES
        await prepare(engine, migrate=True)  # at head: nothing to do
    finally:
        await engine.dispose()


async def test_from_the_previous_version_keeps_its_data(config: DatabaseConfig) -> None:
    engine = make_engine(config)
    try:
        assert await upgrade(engine, "0001") == "0001"
        assert "consumers" not in await tables(engine)
        async with engine.begin() as c:
            await c.execute(text(
                "INSERT INTO stored_responses (id, consumer, deployment, backend, store_key, "
                "created_at) VALUES ('resp_1', 'team-a', 'chat', 'b', 'k', :at)"),
                {"at": datetime.datetime.now(datetime.UTC)})
        with pytest.raises(SchemaError, match="db upgrade"):
            await prepare(engine, migrate=False)  # manual: an old schema is refused
        await prepare(engine, migrate=True)
        assert await current(engine) == HEAD
        async with engine.connect() as c:
            rows = (await c.execute(text("SELECT id, consumer FROM stored_responses"))).all()
            version = (await c.execute(text("SELECT version FROM changes"))).scalar_one()
        assert [tuple(r) for r in rows] == [("resp_1", "team-a")]
        assert version == 0
    finally:
        await engine.dispose()


async def test_a_newer_schema_is_refused(config: DatabaseConfig) -> None:
    engine = make_engine(config)
    try:
        await prepare(engine, migrate=True)
        async with engine.begin() as c:
            await c.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        for migrate in (True, False):
            with pytest.raises(SchemaError, match="newer than this gateway knows"):
                await prepare(engine, migrate=migrate)
        with pytest.raises(SchemaError):
            await upgrade(engine)
    finally:
        await engine.dispose()


def test_db_upgrade_cli_on_postgresql(postgres: str, tmp_path: Path) -> None:
    """`model-gateway db upgrade` and `db current` against PostgreSQL, the password from
    the environment variable the config names (never in the URL)."""
    path = tmp_path / "gw.yaml"
    path.write_text(json.dumps({
        "admin": {"api_keys": {"ops": hash_key("admin-key")}},  # consumers made at runtime
        "deployments": [{"name": "chat", "model": "m", "backends": [
            {"url": "http://127.0.0.1:9/v1", "api": "openai"}]}]}))
    env = {**os.environ, "MODEL_GATEWAY_CONFIG": str(path), "MODEL_GATEWAY_DATABASE__URL": postgres,
           "MODEL_GATEWAY_DATABASE__PASSWORD_ENV": "PG_TEST_PASSWORD"}
    before = subprocess.run([*GATEWAY, "db", "current"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert before.returncode == 0, before.stderr
    assert "none" in before.stdout.lower()
    done = subprocess.run([*GATEWAY, "db", "upgrade"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    after = subprocess.run([*GATEWAY, "db", "current"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert HEAD in after.stdout
    assert "pg-test-password" not in before.stdout + before.stderr + done.stdout + done.stderr

    wrong = {**env, "PG_TEST_PASSWORD": "wrong"}
    failed = subprocess.run([*GATEWAY, "db", "current"], env=wrong, capture_output=True,
                            text=True, timeout=60)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    assert "wrong" not in failed.stderr
