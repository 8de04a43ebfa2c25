"""Team access: runtime consumers and their keys, the audit trail, the usage ledger,
and the change counter replicas poll.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "consumers",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("consumer", sa.String(200), sa.ForeignKey("consumers.name", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("digest", sa.String(80), nullable=False, unique=True),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("expires_at", when, nullable=True),
        sa.Column("revoked_at", when, nullable=True),
    )
    op.create_index("ix_api_keys_consumer", "api_keys", ["consumer"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", when, nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "usage",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("deployment", sa.String(200), primary_key=True),
        sa.Column("hour", when, primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in (
            "requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens",
            "reasoning_tokens", "cost_micros")),
    )
    op.create_table(
        "usage_batches",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("written_at", when, nullable=False),
    )
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO changes (id, version) VALUES (1, 0)")


def downgrade() -> None:
    for table in ("changes", "usage_batches", "usage", "audit_log", "api_keys", "consumers"):
        op.drop_table(table)
