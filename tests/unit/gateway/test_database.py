"""The start-up check knows the migrations without importing Alembic: its constants
must say what the scripts say."""

from __future__ import annotations

from gateway.database import migrate


def test_head_and_known_revisions_match_the_scripts() -> None:
    revisions = migrate.scripts_revisions()
    assert tuple(revisions) == migrate.KNOWN
    assert revisions[-1] == migrate.HEAD
