"""Server-side prepared statements: on for the worker's connections only when asked, never elsewhere."""

from __future__ import annotations

import psycopg

from contentforge import api
from contentforge.db import PREPARED_AFTER_RUNS, connect
from tests import factories as f
from workers.claim import JobStore


def _prepared(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()["n"]


def test_worker_store_prepares_only_when_asked(db_url: str) -> None:
    """A JobStore with a prepare threshold prepares its claim on the server; without one it does not."""
    prepared = JobStore(db_url, lease_seconds=30, prepare_threshold=PREPARED_AFTER_RUNS)
    plain = JobStore(db_url, lease_seconds=30)
    try:
        for store in (prepared, plain):
            for _ in range(PREPARED_AFTER_RUNS + 2):
                assert store.claim("w") is None
        assert prepared.run(_prepared) >= 1
        assert plain.run(_prepared) == 0
    finally:
        prepared.close()
        plain.close()


def test_api_never_prepares_on_a_connection_passed_to_it(db_url: str, conn: psycopg.Connection) -> None:
    """The Python API leaves no prepared statement on a caller's connection with psycopg's defaults,
    nor on the package's own connections."""
    tenant, user = f.tenant(conn), f.user(conn)
    f.member(conn, tenant, user, "author")
    asset = f.asset(conn, tenant, user)
    with psycopg.connect(db_url, autocommit=True, row_factory=psycopg.rows.dict_row) as own:
        for i in range(PREPARED_AFTER_RUNS * 2):
            api.get_job(own, api.enqueue(own, asset, "noop", {"tag": str(i)}))
        assert _prepared(own) == 0
    with connect(db_url, autocommit=True) as ours:
        for _ in range(PREPARED_AFTER_RUNS * 2):
            ours.execute("SELECT 1")
        assert _prepared(ours) == 0
