"""schema/snapshot.sql describes exactly the schema the migrations build."""

from __future__ import annotations

import difflib

import psycopg
import pytest

from schema import snapshot
from tests.conftest import url_for


def test_snapshot_matches_the_migrations(template_db: str, fresh_db: str) -> None:
    """The checked-in snapshot, applied to an empty database, dumps the same as a migrated one (regenerate with
    `python -m schema.snapshot` after adding a migration)."""
    try:
        migrated = snapshot.dump(url_for(template_db))
    except FileNotFoundError as exc:  # the embedded PostgreSQL 18 with only a pg_dump 15 on the machine
        pytest.skip(str(exc))
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(snapshot.SNAPSHOT.read_text(encoding="utf-8"))
    rebuilt = snapshot.dump(fresh_db)
    diff = "".join(difflib.unified_diff(migrated.splitlines(True), rebuilt.splitlines(True),
                                        "migrations", "snapshot.sql", n=1))
    assert not diff, f"schema/snapshot.sql is out of date; run `python -m schema.snapshot`:\n{diff[:4000]}"

