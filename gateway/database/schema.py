"""The tables, as SQLAlchemy Core. A change here comes with a migration in
`migrations/versions/` (Alembic), which is what actually shapes a database."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table

metadata = MetaData()

# Who created a stored response, and which upstream store holds it: follow-ups,
# retrieval and deletion go there, and only for that consumer.
stored_responses = Table(
    "stored_responses", metadata,
    Column("id", String(200), primary_key=True),
    Column("consumer", String(200), nullable=False),
    Column("deployment", String(200), nullable=False),
    Column("backend", String(300), nullable=False),
    Column("store_key", String(600), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_stored_responses_created_at", "created_at"),
)
