"""Alembic's entry point: the gateway runs migrations on a connection it opened
(`gateway.database.migrate`), passed in the config's attributes."""

from __future__ import annotations

from alembic import context

from gateway.database.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `model-gateway db upgrade`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
