"""The queries of the responses the gateway stores itself, on real databases (a file
SQLite and a PostgreSQL server of the test's own): a conversation read back oldest
first in one query, completed after its stream, and broken by a deletion."""

from __future__ import annotations

import pytest

from gateway.config import DatabaseConfig
from gateway.database.engine import make_engine
from gateway.database.gateway_responses import GatewayResponses
from gateway.database.migrate import prepare


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request: pytest.FixtureRequest, database: str) -> DatabaseConfig:
    if request.param == "sqlite":
        return DatabaseConfig(url=database)
    return DatabaseConfig(url=request.getfixturevalue("postgres"), password_env="PG_TEST_PASSWORD")


async def test_a_conversation_is_its_chain_oldest_first(config: DatabaseConfig) -> None:
    engine = make_engine(config)
    try:
        await prepare(engine, migrate=True)
        store = GatewayResponses(engine)
        previous = None
        for n in range(5):
            await store.create(f"resp_gw_{n}", previous, "completed",
                               {"id": f"resp_gw_{n}", "output": [{"n": n, "text": "é ✓"}]},
                               [{"id": f"msg_{n}", "type": "message"}])
            previous = f"resp_gw_{n}"
        chain = await store.chain("resp_gw_4")
        assert chain is not None
        assert [r.ident for r in chain] == [f"resp_gw_{n}" for n in range(5)]
        assert chain[0].previous is None and chain[-1].response["output"][0]["text"] == "é ✓"
        assert await store.chain("resp_gw_missing") == []
        await store.create("resp_gw_s", "resp_gw_4", "in_progress", {"id": "resp_gw_s"}, [])
        assert (await store.get("resp_gw_s")).status == "in_progress"  # type: ignore[union-attr]
        await store.finish("resp_gw_s", "completed", {"id": "resp_gw_s", "output": []})
        done = await store.get("resp_gw_s")
        assert done is not None and done.status == "completed" and done.response["output"] == []
        await store.delete("resp_gw_2")
        assert await store.chain("resp_gw_4") is None  # an earlier part is gone
        kept = await store.chain("resp_gw_1")
        assert kept is not None and [r.ident for r in kept] == ["resp_gw_0", "resp_gw_1"]
        assert await store.get("resp_gw_2") is None
    finally:
        await engine.dispose()
