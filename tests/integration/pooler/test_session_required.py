"""What needs a PostgreSQL session (relay, scheduler, migrations) refuses a transaction pooler at
start with a message naming the fix, and runs when DATABASE_SESSION_URL gives it a session."""

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

#: Words the refusal must contain: the problem, and the setting that fixes it.
PROBLEM = "goes through a transaction-mode connection pooler"
FIX = "Set DATABASE_SESSION_URL to a direct connection string or a session-mode pooler"


def _refused(result: object, process: str) -> None:
    assert result.returncode == 2, result.stderr  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert PROBLEM in err and FIX in err and process in err, err


def test_probe_tells_each_kind_of_connection_apart(
        db_url: str, transaction_pooler: PgBouncer, session_pooler: PgBouncer) -> None:
    """The session check says "session" directly and through a session pooler, "transaction"
    through a transaction pooler."""
    from contentforge.pooler import probe

    assert probe(db_url).verdict == "session"
    assert probe(session_pooler.url(db_url)).verdict == "session"
    assert probe(transaction_pooler.url(db_url)).verdict == "transaction"


def test_migrate_refuses_a_transaction_pooler(fresh_db: str, transaction_pooler: PgBouncer) -> None:
    """`db migrate` through a transaction pooler exits 2 with the fix, and applies nothing."""
    result = cli("db", "migrate", env=cli_env(transaction_pooler.url(fresh_db)))
    _refused(result, "contentforge db migrate")
    with psycopg.connect(fresh_db) as c:
        assert c.execute("SELECT to_regclass('contentforge_meta.schema_migrations')").fetchone()[0] is None


def test_migrate_uses_the_session_url(fresh_db: str, transaction_pooler: PgBouncer, tmp_path: Path) -> None:
    """With DATABASE_SESSION_URL set, `db migrate` applies through it; the read-only commands
    (`db status`, `scheduler list`, `jobs list`) work through the pooler."""
    env = cli_env(transaction_pooler.url(fresh_db), DATABASE_SESSION_URL=fresh_db, CONTENTFORGE_DATA_DIR=str(tmp_path))
    assert cli("db", "migrate", env=env).returncode == 0
    for command in (["db", "status"], ["scheduler", "list", "--json"], ["jobs", "list", "--json"]):
        read = cli(*command, env={**env, "DATABASE_SESSION_URL": "postgresql://nobody@127.0.0.1:1/none"})
        assert read.returncode == 0, read.stdout + read.stderr


def test_scheduler_refuses_a_transaction_pooler(db_url: str, conn: psycopg.Connection, tmp_path: Path,
                                                transaction_pooler: PgBouncer) -> None:
    """`scheduler` and `scheduler run` through a transaction pooler exit 2 with the fix and run nothing."""
    env = cli_env(transaction_pooler.url(db_url), CONTENTFORGE_DATA_DIR=str(tmp_path))
    _refused(cli("scheduler", env=env), "contentforge scheduler")
    _refused(cli("scheduler", "run", "publish", env=env), "contentforge scheduler run publish")
    assert conn.execute("SELECT count(*) AS n FROM app_private.scheduler_runs").fetchone()["n"] == 0


def test_worker_refuses_a_transaction_pooler(db_url: str, redis_url: str, run_id: str, tmp_path: Path,
                                             transaction_pooler: PgBouncer) -> None:
    """`worker` through a transaction pooler exits 2, naming its relay and the fix."""
    env = cli_env(transaction_pooler.url(db_url), REDIS_URL=redis_url, CONTENTFORGE_QUEUE_NAME=f"q_{run_id}",
                  STORAGE_URL=(tmp_path / "storage").as_uri(), CONTENTFORGE_WORKER_PROCESSES="1")
    _refused(cli("worker", env=env), "the relay of `contentforge worker`")


@pytest.mark.slow
def test_worker_and_scheduler_with_a_session_url(db_url: str, conn: psycopg.Connection, redis_url: str,
                                                 run_id: str, tmp_path: Path,
                                                 transaction_pooler: PgBouncer) -> None:
    """DATABASE_URL on a transaction pooler plus DATABASE_SESSION_URL: jobs enqueued and run through
    the pooler complete, and the scheduler runs its tasks."""
    pooled = transaction_pooler.url(db_url)
    tenant, user = f.tenant(conn), f.user(conn)
    f.member(conn, tenant, user, "author")
    asset = f.asset(conn, tenant, user)
    env = cli_env(pooled, DATABASE_SESSION_URL=db_url, REDIS_URL=redis_url, CONTENTFORGE_QUEUE_NAME=f"q_{run_id}",
                  STORAGE_URL=(tmp_path / "storage").as_uri(), CONTENTFORGE_DATA_DIR=str(tmp_path),
                  CONTENTFORGE_WORKER_PROCESSES="1", CONTENTFORGE_WORKER_THREADS="2",
                  CONTENTFORGE_SWEEP_INTERVAL_SECONDS="0.5", CONTENTFORGE_SHUTDOWN_GRACE_SECONDS="5",
                  CONTENTFORGE_SCHEDULE_PUBLISH="every 1s")
    with running("worker", env=env, log=tmp_path / "worker.log") as worker, \
            running("scheduler", env=env, log=tmp_path / "scheduler.log") as scheduler:
        jobs: list[uuid.UUID] = [api.enqueue(pooled, asset, "noop", {"tag": str(i)}) for i in range(40)]

        def done() -> bool:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            row = conn.execute("SELECT count(*) FILTER (WHERE status = 'completed') AS ok, count(*) AS n "
                               "FROM asset_processing_jobs WHERE id = ANY(%s)", (jobs,)).fetchone()
            return row["ok"] == row["n"] == len(jobs)

        wait_for(done, 60, "the jobs to complete")
        wait_for(lambda: conn.execute("SELECT count(*) AS n FROM app_private.scheduler_runs WHERE task = 'publish' "
                                      "AND outcome = 'succeeded'").fetchone()["n"] >= 2, 60, "two publish runs")
        assert scheduler.poll() is None
        worker.send_signal(signal.SIGTERM)
        scheduler.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0 and scheduler.wait(60) == 0
    assert '"prepared_statements": "off"' in (tmp_path / "worker.log").read_text()  # "auto" through the pooler
    for name in ("worker.log", "scheduler.log"):
        log = (tmp_path / name).read_text()
        assert '"level": "error"' not in log and "prepared statement" not in log, log


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_check_waits_for_an_unreachable_database(command: str, redis_url: str, run_id: str, tmp_path: Path) -> None:
    """`worker` (for STARTUP_WAIT_SECONDS, then exit 3) and `scheduler` started while PostgreSQL is
    down keep retrying instead of exiting at once, and stop cleanly on SIGTERM meanwhile."""
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = cli_env(f"postgresql://postgres@127.0.0.1:{port}/nothing", REDIS_URL=redis_url,
                  CONTENTFORGE_QUEUE_NAME=f"q_{run_id}", STORAGE_URL=(tmp_path / "storage").as_uri(),
                  CONTENTFORGE_DATA_DIR=str(tmp_path), CONTENTFORGE_WORKER_PROCESSES="1")
    log = tmp_path / f"{command}.log"
    with running(command, env=env, log=log) as proc:
        warning = {"worker": "waiting for services before starting",
                   "scheduler": "check for a transaction pooler; retrying"}[command]
        wait_for(lambda: warning in log.read_text(), 60, "the retry warning")
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()


@pytest.mark.parametrize(("command", "process"), [
    (("webhooks", "dispatch"), "contentforge webhooks dispatch"),
    (("events", "tail"), "contentforge events tail"),
])
def test_event_listeners_refuse_a_transaction_pooler(command: tuple[str, ...], process: str, db_url: str,
                                                    tmp_path: Path, transaction_pooler: PgBouncer) -> None:
    """The webhook dispatcher and `events tail` LISTEN, so through a transaction pooler they exit 2 with the
    fix instead of polling or missing events silently."""
    _refused(cli(*command, env=cli_env(transaction_pooler.url(db_url), CONTENTFORGE_DATA_DIR=str(tmp_path))),
             process)
