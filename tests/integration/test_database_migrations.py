"""Schema migrations against real databases (a file SQLite, a PostgreSQL server of the
test's own): from nothing to the newest schema (made in one step, and the same as
every migration from nothing), from the previous version with its data kept, and a
schema newer than the gateway refused."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import DatabaseConfig
from gateway.database.engine import make_engine
from gateway.database.errors import SchemaError
from gateway.database.migrate import HEAD, create_if_empty, current, prepare, upgrade
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


@pytest.fixture
def twin(config: DatabaseConfig, request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseConfig:
    """A second empty database beside `config`'s, on the same kind of server."""
    if config.url.startswith("sqlite"):
        return DatabaseConfig(url=f"sqlite:///{tmp_path}/twin.db")
    server = request.getfixturevalue("postgres_server")
    url = asyncio.run(server.create_database("t" + secrets.token_hex(6)))
    return DatabaseConfig(url=url, password_env="PG_TEST_PASSWORD")


def _shape(sync: Connection) -> dict[str, Any]:
    """Every table's columns (types with their time zone), keys (with their names and
    ON DELETE), indexes and rows, as the database reports them."""
    seen = inspect(sync)
    shape: dict[str, Any] = {}
    for table in sorted(seen.get_table_names()):
        # By name: PostgreSQL appends a column a migration adds, where the tables made
        # at once have it in schema.py's order; nothing reads columns by position.
        # `str(type)` says TIMESTAMP with or without a time zone: the flag is compared too.
        columns = sorted((c["name"], str(c["type"]), getattr(c["type"], "timezone", None),
                          c["nullable"], str(c.get("default")))
                         for c in seen.get_columns(table))
        indexes = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                         for i in seen.get_indexes(table))
        keys = sorted((f["name"] or "", tuple(f["constrained_columns"]), f["referred_table"],
                       tuple(f["referred_columns"]), str(sorted(f.get("options", {}).items())))
                      for f in seen.get_foreign_keys(table))
        uniques = sorted((u["name"] or "", tuple(u["column_names"]))
                         for u in seen.get_unique_constraints(table))
        pk = seen.get_pk_constraint(table)
        primary = (pk.get("name") or "", tuple(pk["constrained_columns"]))
        rows = sorted(tuple(map(str, r)) for r in sync.execute(text(f"SELECT * FROM {table}")))
        shape[table] = {"columns": columns, "indexes": indexes, "foreign keys": keys,
                        "unique": uniques, "primary key": primary, "rows": rows}
    return shape


async def test_an_empty_database_made_at_head_is_what_the_migrations_make(
        config: DatabaseConfig, twin: DatabaseConfig) -> None:
    """The first start's shortcut (the tables from schema.py, the seeded rows, the revision)
    gives the same database as Alembic running every migration from nothing, and Alembic
    takes it from there."""
    made, migrated = make_engine(config), make_engine(twin)
    try:
        assert await create_if_empty(made)
        assert await upgrade(migrated) == HEAD  # Alembic, every script from nothing
        async with made.connect() as a, migrated.connect() as b:
            assert await a.run_sync(_shape) == await b.run_sync(_shape)
        assert await upgrade(made) == HEAD  # Alembic reads the revision it was given
        assert not await create_if_empty(made)  # not empty any more: left alone
    finally:
        await made.dispose()
        await migrated.dispose()


async def test_a_schema_made_halfway_leaves_the_database_empty(config: DatabaseConfig,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A first start that fails after some tables were made (here: a seed row that cannot
    be written) leaves no table behind, so that the next start makes the schema again."""
    from gateway.database import migrate

    monkeypatch.setattr(migrate, "SEEDS", ("INSERT INTO no_such_table VALUES (1)",))
    engine = make_engine(config)
    try:
        with pytest.raises(Exception, match="no_such_table"):
            await create_if_empty(engine)
        assert await tables(engine) == set()
        monkeypatch.undo()
        assert await create_if_empty(engine) and await current(engine) == HEAD
    finally:
        await engine.dispose()


async def test_a_database_with_a_table_of_its_own_is_not_made_but_migrated(config: DatabaseConfig) -> None:
    """A database that holds anything is not empty: the migrations, which create only
    their own tables, take it; the shortcut leaves it alone."""
    engine = make_engine(config)
    try:
        async with engine.begin() as c:
            await c.execute(text("CREATE TABLE theirs (id INTEGER PRIMARY KEY)"))
        assert not await create_if_empty(engine)
        assert await tables(engine) == {"theirs"}
        await prepare(engine, migrate=True)
        assert await current(engine) == HEAD and await tables(engine) >= TABLES | {"theirs"}
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
