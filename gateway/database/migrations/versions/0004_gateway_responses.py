"""Responses the gateway stores itself (answers of translated backends, which store
nothing): one row per response, its input items and the response as JSON text, linked
to the response it continues.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_responses",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("previous_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("input_items", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gateway_responses_created_at", "gateway_responses", ["created_at"])


def downgrade() -> None:
    op.drop_table("gateway_responses")
