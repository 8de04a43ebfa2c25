"""Media units and APIs in the usage ledger: `images`, `audio_seconds` and `characters`
beside the tokens on the hourly rows (`usage`) and the day rollup (`usage_days`), and
the client API and backend API (`api`, `backend_api`) in both tables' keys, so that a
consumer's use of one deployment through two APIs (or translated to another) is two
rows. Rows already there keep their figures, with no units and empty APIs.

PostgreSQL adds the columns in place (their defaults make that a change of the catalog
only) and builds the new primary keys; SQLite, which cannot change a primary key,
copies each table into one of the new shape.

Revision ID: 0005
Revises: 0003 (another branch adds 0004: the chain is fixed where they meet)
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD = ("requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens",
       "reasoning_tokens", "cost_micros")
MEDIA = ("images", "audio_seconds", "characters")
# table -> (its key before, its time column, its indexes: name -> columns)
TABLES = {
    "usage": (("consumer", "deployment", "hour"), "hour",
              {"ix_usage_hour": ["hour"], "ix_usage_deployment_hour": ["deployment", "hour"]}),
    "usage_days": (("consumer", "day", "deployment"), "day",
                   {"ix_usage_days_day": ["day"],
                    "ix_usage_days_deployment_day": ["deployment", "day"]}),
}


def _columns(table: str, media: bool) -> list[sa.Column[object]]:
    key, when, _ = TABLES[table]
    kind = sa.DateTime(timezone=True) if when == "hour" else sa.Date()
    columns: list[sa.Column[object]] = [
        sa.Column(name, kind if name == when else sa.String(200), primary_key=True) for name in key]
    if media:
        columns += [sa.Column(name, sa.String(100), primary_key=True, server_default="")
                    for name in ("api", "backend_api")]
    columns += [sa.Column(name, sa.BigInteger, nullable=False) for name in OLD]
    if media:
        columns += [sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
                    for name in MEDIA]
    return columns


def _copy(table: str, media: bool) -> None:
    """SQLite: `table` rebuilt in the new shape (media) or the old one, its rows kept
    (summed over the APIs when going back)."""
    key, _, indexes = TABLES[table]
    for name in indexes:
        op.drop_index(name, table)
    op.create_table(f"{table}_new", *_columns(table, media))
    keys, sums = ", ".join(key), ", ".join(f"SUM({n})" for n in OLD)
    if media:
        op.execute(f"INSERT INTO {table}_new ({keys}, api, backend_api, {', '.join(OLD)}) "
                   f"SELECT {keys}, '', '', {', '.join(OLD)} FROM {table}")
    else:
        op.execute(f"INSERT INTO {table}_new ({keys}, {', '.join(OLD)}) "
                   f"SELECT {keys}, {sums} FROM {table} GROUP BY {keys}")
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)
    for name, columns in indexes.items():
        op.create_index(name, table, columns)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            _copy(table, media=True)
        return
    for table, (key, _, _) in TABLES.items():
        for name in ("api", "backend_api"):
            op.add_column(table, sa.Column(name, sa.String(100), nullable=False, server_default=""))
        for name in MEDIA:
            op.add_column(table, sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        op.create_primary_key(f"{table}_pkey", table, [*key, "api", "backend_api"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in TABLES:
            _copy(table, media=False)
        return
    for table, (key, _, _) in TABLES.items():
        # Rows of one old key (several APIs) summed into one, as the old key allows.
        keys = ", ".join(key)
        op.execute(f"CREATE TEMPORARY TABLE {table}_sums AS SELECT {keys}, "
                   + ", ".join(f"SUM({n}) AS {n}" for n in OLD) + f" FROM {table} GROUP BY {keys}")
        op.execute(f"DELETE FROM {table}")
        op.drop_constraint(f"{table}_pkey", table, type_="primary")
        for name in ("api", "backend_api", *MEDIA):
            op.drop_column(table, name)
        op.create_primary_key(f"{table}_pkey", table, list(key))
        op.execute(f"INSERT INTO {table} ({keys}, {', '.join(OLD)}) "
                   f"SELECT {keys}, {', '.join(OLD)} FROM {table}_sums")
        op.execute(f"DROP TABLE {table}_sums")
