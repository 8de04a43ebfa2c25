"""The tables, as SQLAlchemy Core. A change here comes with a migration in
`migrations/versions/` (Alembic), which shapes every database that exists; a new, empty
one is made from these tables directly (`migrate.create_if_empty`), so the two must
agree exactly (tests/integration/test_database_migrations.py compares them)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from gateway.database.values import COUNTS

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

# Responses the gateway stores itself: those a backend of another API answered (it
# stores nothing). Their owner is a stored_responses row like any other, under the
# gateway's own store key. A row holds its request's own input items and the response
# (JSON text); a follow-up's conversation is the chain of previous_id links.
gateway_responses = Table(
    "gateway_responses", metadata,
    Column("id", String(200), primary_key=True),
    Column("previous_id", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("response", Text, nullable=False),
    Column("input_items", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_gateway_responses_created_at", "created_at"),
)

# Consumers made at runtime (the admin API, the CLI); those of the YAML are not here.
consumers = Table(
    "consumers", metadata,
    Column("name", String(200), primary_key=True),
    Column("spec", JSON, nullable=False),  # the ConsumerConfig fields but name and api_keys
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Keys of runtime consumers: only a digest, and the first characters to recognise it by.
api_keys = Table(
    "api_keys", metadata,
    Column("id", String(40), primary_key=True),
    Column("consumer", String(200), ForeignKey("consumers.name", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("digest", String(80), nullable=False, unique=True),
    Column("prefix", String(20), nullable=False),
    Column("description", String(500), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Every admin action: who, what, when. Never a key or a digest.
audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(300), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(300), nullable=False),
    Column("detail", JSON, nullable=False),
)

# The ledger's figures, in the order of gateway.database.values.COUNTS: tokens, cost, and
# the media units (images, seconds of audio transcribed or translated, characters of
# speech input).
FIGURES = COUNTS
MEDIA = ("images", "audio_seconds", "characters")


def _figures() -> list[Column[int]]:
    return [Column(name, BigInteger, nullable=False, server_default="0" if name in MEDIA else None)
            for name in FIGURES]


def _apis() -> list[Column[str]]:
    """The client's API (`chat.completions`, `audio.speech`) and what the backend was sent
    (another when the gateway translated): part of a row's key."""
    return [Column(name, String(100), primary_key=True, server_default="")
            for name in ("api", "backend_api")]


# Settled usage per consumer, deployment, hour (UTC), client API and backend API.
usage = Table(
    "usage", metadata,
    Column("consumer", String(200), primary_key=True),
    Column("deployment", String(200), primary_key=True),
    Column("hour", DateTime(timezone=True), primary_key=True),
    *_apis(),
    *_figures(),
    # The console's and the admin API's filters: a time range alone, or with a deployment
    # (a consumer's rows are found by the primary key's first column).
    Index("ix_usage_hour", "hour"),
    Index("ix_usage_deployment_hour", "deployment", "hour"),
)

# The same figures per consumer, deployment, day (UTC) and APIs, kept by the ledger's batch
# writes in the same transaction as the hourly rows: a month's report reads 30 rows per
# consumer and deployment instead of 720.
usage_days = Table(
    "usage_days", metadata,
    Column("consumer", String(200), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("deployment", String(200), primary_key=True),
    *_apis(),
    *_figures(),
    Index("ix_usage_days_day", "day"),
    Index("ix_usage_days_deployment_day", "deployment", "day"),
)

# Console sessions (gateway.console): in the database so that every replica knows them
# and a logout ends one everywhere. `id` is the SHA-256 of the cookie's value, never the
# value itself; `proof` ties a key session to the admin key it was opened with (its
# digest, digested again), so that a key removed or replaced ends its sessions.
console_sessions = Table(
    "console_sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("actor", String(300), nullable=False),
    Column("proof", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

# Ledger batches already written: a batch sent again (a retry, a replay after a crash)
# is recognised by its id and not counted twice.
usage_batches = Table(
    "usage_batches", metadata,
    Column("id", String(200), primary_key=True),
    Column("written_at", DateTime(timezone=True), nullable=False),
)

# One row: bumped by every change to consumers and keys, polled by every replica.
changes = Table(
    "changes", metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)
