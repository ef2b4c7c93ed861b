"""A failed leadership attempt leaves the scheduler on standby and no connection behind (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from contentforge.settings import Settings
from scheduler.service import SchedulerService
from tests.conftest import ADMIN_URL
from tests.integration.queue.conftest import wait_for


@pytest.fixture
def login_role(run_id: str) -> Iterator[str]:
    """A plain login role of this cluster, dropped afterwards."""
    name = f"cf_sched_{run_id}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
        c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_failed_leadership_query_stays_on_standby_and_closes_its_connection(
        db_url: str, conn: psycopg.Connection, login_role: str, tmp_path: Path) -> None:
    """When the advisory-lock query itself fails (here: permission denied), _try_lead returns False
    and its connection is closed instead of leaking."""
    conn.execute("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_try_advisory_lock(bigint) FROM PUBLIC")
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    info["user"] = login_role
    svc = SchedulerService(psycopg.conninfo.make_conninfo(**info), Settings(_env_file=None, data_dir=tmp_path))
    assert svc._try_lead() is False
    # A closed session leaves pg_stat_activity when its backend has exited: poll for that.
    wait_for(lambda: conn.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE usename = %s",
                                  (login_role,)).fetchone()["n"] == 0, 10, "the attempt's session to end")
