"""Owners of stored responses (the Responses API).

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("deployment", sa.String(200), nullable=False),
        sa.Column("backend", sa.String(300), nullable=False),
        sa.Column("store_key", sa.String(600), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_stored_responses_created_at", "stored_responses", ["created_at"])


def downgrade() -> None:
    op.drop_table("stored_responses")
