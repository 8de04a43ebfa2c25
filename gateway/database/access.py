"""How the rest of the gateway reaches the database: the app key that holds it, absent
when `database.enabled` is false. Nothing here imports SQLAlchemy, so that a gateway
without a database (the sidecar) loads none of it: `gateway.app` imports
`engine.database_ctx` only when the database is enabled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.database.engine import Database

# What must last: stored-response owners, runtime consumers, the ledger, console sessions.
DATABASE: web.AppKey[Database] = web.AppKey("database")

