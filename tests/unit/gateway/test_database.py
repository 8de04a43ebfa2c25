"""The start-up check knows the migrations without importing Alembic: its constants
must say what the scripts say."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config.models import DatabaseConfig
from gateway.database import migrate
from gateway.database.engine import engine_url, make_engine
from gateway.database.errors import DatabaseUnavailable
from gateway.database.migrate import prepare
from gateway.database.responses import ResponseOwners
from gateway.database.values import Owner


def test_head_and_known_revisions_match_the_scripts() -> None:
    revisions = migrate.scripts_revisions()
    assert tuple(revisions) == migrate.KNOWN
    assert revisions[-1] == migrate.HEAD


# --- where the engine connects, and with which password ---------------------------------





def test_sqlite_uses_the_async_driver() -> None:
    url = engine_url(DatabaseConfig(url="sqlite:////tmp/x.db"))
    assert url.drivername == "sqlite+aiosqlite" and url.database == "/tmp/x.db"


def test_the_postgresql_password_comes_from_the_environment_or_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_PW", "from-env")
    url = engine_url(DatabaseConfig(url="postgresql://gw@db/gateway", password_env="PG_PW"))
    assert url.drivername == "postgresql+asyncpg" and url.password == "from-env"
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert engine_url(DatabaseConfig(url="postgres://gw@db/g", password_file=secret)).password == \
        "from-file"
    assert engine_url(DatabaseConfig(url="postgresql://gw@db/g")).password is None


def test_a_missing_password_says_where_it_was_looked_for(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PG_PW", raising=False)
    with pytest.raises(DatabaseUnavailable, match="PG_PW is not set"):
        engine_url(DatabaseConfig(url="postgresql://gw@db/g", password_env="PG_PW"))
    with pytest.raises(DatabaseUnavailable, match=r"database\.password_file: No such file"):
        engine_url(DatabaseConfig(url="postgresql://gw@db/g", password_file=tmp_path / "none"))


def test_only_sqlite_and_postgresql_urls() -> None:
    with pytest.raises(ValueError, match="must start with sqlite"):
        DatabaseConfig(url="mysql://gw@db/g")


async def test_response_owners_are_kept_once_and_forgotten(tmp_path: Path) -> None:
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path}/owners.db"))
    try:
        await prepare(engine, migrate=True)
        owners = ResponseOwners(engine)
        first = Owner("team-a", "chat", "b0", "store-1")
        # Written together (one transaction), one of them twice: the first owner stands.
        await asyncio.gather(owners.remember("resp_1", first),
                             owners.remember("resp_2", Owner("team-b", "chat", "b1", "store-2")),
                             owners.remember("resp_1", Owner("team-x", "chat", "b9", "store-9")))
        fresh = ResponseOwners(engine)  # another replica: nothing cached
        assert await fresh.owner("resp_1") == first
        assert (await fresh.owner("resp_2")).consumer == "team-b"  # type: ignore[union-attr]
        assert await fresh.owner("resp_3") is None
        await fresh.forget("resp_1")
        assert await ResponseOwners(engine).owner("resp_1") is None
    finally:
        await engine.dispose()


async def test_a_failed_owner_write_reaches_every_waiting_caller(tmp_path: Path) -> None:
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path}/none.db"))  # never migrated
    try:
        owners = ResponseOwners(engine)
        results = await asyncio.gather(
            owners.remember("resp_1", Owner("a", "chat", "b0", "s")),
            owners.remember("resp_2", Owner("a", "chat", "b0", "s")), return_exceptions=True)
        assert all(isinstance(r, Exception) for r in results), results
        assert "resp_1" not in owners._cache  # nothing taken for granted
    finally:
        await engine.dispose()
