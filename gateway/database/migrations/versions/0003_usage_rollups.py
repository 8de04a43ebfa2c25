"""Usage rollups for the console: the ledger's figures per consumer, deployment and day
(UTC), filled from the hourly rows already there and kept from then on by the ledger's
batch writes; indexes on the hourly rows for the filters reports use; and the console's
sessions (one table more in the same revision, so that replicas share them).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COUNTS = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens",
          "reasoning_tokens", "cost_micros")


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_index("ix_usage_hour", "usage", ["hour"])
    op.create_index("ix_usage_deployment_hour", "usage", ["deployment", "hour"])
    op.create_table(
        "usage_days",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("deployment", sa.String(200), primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in COUNTS),
    )
    op.create_index("ix_usage_days_day", "usage_days", ["day"])
    op.create_index("ix_usage_days_deployment_day", "usage_days", ["deployment", "day"])
    op.execute(backfill(op.get_bind().dialect.name))
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("proof", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("expires_at", when, nullable=False),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])


def backfill(dialect: str) -> str:
    """The day rows of the hourly rows there are (also what the benchmark loads with)."""
    # SQLite keeps a DateTime as 'YYYY-MM-DD HH:MM:SS...' in UTC and a Date as
    # 'YYYY-MM-DD': the first ten characters are the day.
    day = "substr(hour, 1, 10)" if dialect == "sqlite" else "CAST((hour AT TIME ZONE 'UTC') AS date)"
    sums = ", ".join(f"SUM({name})" for name in COUNTS)
    return (f"INSERT INTO usage_days (consumer, day, deployment, {', '.join(COUNTS)}) "
            f"SELECT consumer, {day}, deployment, {sums} FROM usage "
            f"GROUP BY consumer, {day}, deployment")


def downgrade() -> None:
    op.drop_table("console_sessions")
    op.drop_table("usage_days")
    op.drop_index("ix_usage_deployment_hour", "usage")
    op.drop_index("ix_usage_hour", "usage")
