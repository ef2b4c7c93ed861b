"""Everything runs through a session-mode pooler (PgBouncer pool_mode = session, Supabase's session
pooler): migrations, the worker with its relay, and the scheduler."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import psycopg
import pytest

from contentforge import api
from tests import factories as f
from tests.integration.pooler.conftest import cli, cli_env, running
from tests.integration.queue.conftest import wait_for
from tests.pgbouncer import PgBouncer


@pytest.mark.slow
def test_migrations_worker_and_scheduler_through_a_session_pooler(
        fresh_db: str, redis_url: str, run_id: str, tmp_path: Path, session_pooler: PgBouncer) -> None:
    """`db migrate`, `worker` and `scheduler` with DATABASE_URL on a session pooler: the schema is
    applied, jobs enqueued through it complete, scheduled tasks run, and both stop cleanly."""
    pooled = session_pooler.url(fresh_db)
    env = cli_env(pooled, REDIS_URL=redis_url, CONTENTFORGE_QUEUE_NAME=f"q_{run_id}",
                  STORAGE_URL=(tmp_path / "storage").as_uri(), CONTENTFORGE_DATA_DIR=str(tmp_path),
                  CONTENTFORGE_WORKER_PROCESSES="1", CONTENTFORGE_WORKER_THREADS="2",
                  CONTENTFORGE_SWEEP_INTERVAL_SECONDS="0.5", CONTENTFORGE_SHUTDOWN_GRACE_SECONDS="5",
                  CONTENTFORGE_SCHEDULE_PUBLISH="every 1s")
    migrated = cli("db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert cli("db", "status", env=env).returncode == 0

    with psycopg.connect(fresh_db, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        tenant, user = f.tenant(conn), f.user(conn)
        f.member(conn, tenant, user, "author")
        asset = f.asset(conn, tenant, user)
        api.set_test_job_types(conn, True)  # noop is test-only; this database was migrated here
        with running("worker", env=env, log=tmp_path / "worker.log") as worker, \
                running("scheduler", env=env, log=tmp_path / "scheduler.log") as scheduler:
            jobs: list[uuid.UUID] = [api.enqueue(pooled, asset, "noop", {"tag": str(i)}) for i in range(20)]

            def done() -> bool:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                row = conn.execute("SELECT count(*) FILTER (WHERE status = 'completed') AS ok "
                                   "FROM asset_processing_jobs WHERE id = ANY(%s)", (jobs,)).fetchone()
                return row["ok"] == len(jobs)

            wait_for(done, 60, "the jobs to complete")
            wait_for(lambda: conn.execute(
                "SELECT count(*) AS n FROM app_private.scheduler_runs WHERE task = 'publish' "
                "AND outcome = 'succeeded'").fetchone()["n"] >= 2, 60, "two publish runs")
            assert scheduler.poll() is None
            worker.send_signal(signal.SIGTERM)
            scheduler.send_signal(signal.SIGTERM)
            assert worker.wait(60) == 0 and scheduler.wait(60) == 0
    assert '"event": "relay active"' in (tmp_path / "worker.log").read_text()
    assert '"prepared_statements": "on"' in (tmp_path / "worker.log").read_text()  # "auto" on a session
    assert '"event": "scheduler is active"' in (tmp_path / "scheduler.log").read_text()
    # They really went through the pooler: it logged their logins to this database.
    assert f"login attempt: db={psycopg.conninfo.conninfo_to_dict(fresh_db)['dbname']}" in session_pooler.log()
