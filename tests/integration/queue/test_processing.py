"""The happy path and the nudge machinery: SQL-only enqueue, duplicate and lost nudges, restarts of
PostgreSQL connections, and what a finished job writes."""

from __future__ import annotations

import shutil
import subprocess
import time

import psycopg
import pytest

from tests.integration.queue.conftest import World, enqueue, job, wait_status


def test_sql_only_enqueue_from_psql_is_processed(in_process, world: World, conn: psycopg.Connection,
                                                 db_url: str) -> None:
    """A job queued by a plain psql session, with named parameters and no Python, runs to completion."""
    in_process()
    psql = shutil.which("psql")
    assert psql, "psql is needed for this test"
    out = subprocess.run(
        [psql, db_url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c",
         f"SELECT enqueue_asset_job(asset_id => '{world.asset}', job_type => 'noop', "
         f"params => '{{\"sleep_seconds\": 0}}', idempotency_key => 'upload-42')"],
        check=True, capture_output=True, text=True,
    )
    job_id = out.stdout.strip()
    row = wait_status(conn, job_id, "completed", timeout=10)
    assert row["attempts"] == 1
    assert row["output_data"] == {"slept_seconds": 0.0, "outputs": []}


def test_duplicate_nudges_run_a_job_once(in_process, world: World, conn: psycopg.Connection) -> None:
    """Twenty nudges for one job, handled by four threads at once, claim and run it exactly once."""
    w = in_process(threads=4, relay=False)
    job_id = enqueue(conn, world.asset, params={"sleep_seconds": 0.5})
    for _ in range(20):
        w.actor.send()
    row = wait_status(conn, job_id, "completed", timeout=10)
    time.sleep(0.5)  # let the other nudges be handled too
    assert job(conn, job_id)["attempts"] == 1
    assert row["completed_at"] is not None


def test_lost_nudges_are_replaced_by_the_sweep(in_process, world: World, conn: psycopg.Connection) -> None:
    """When Redis loses every nudge (queue flushed), the job still runs within about one sweep interval."""
    w = in_process(consume=False)  # relay only: the nudge waits in Redis
    job_id = enqueue(conn, world.asset)
    from tests.integration.queue.conftest import wait_for
    from workers.broker import queue_size

    wait_for(lambda: queue_size(w.broker, w.settings.queue_name) >= 1, 5, "the relay's nudge")
    w.broker.flush(w.settings.queue_name)
    assert queue_size(w.broker, w.settings.queue_name) == 0
    flushed_at = time.monotonic()
    w.worker.start()
    wait_status(conn, job_id, "completed", timeout=10)
    recovery = time.monotonic() - flushed_at
    print(f"redis flush recovery: {recovery:.2f} s")
    assert recovery < w.settings.sweep_interval_seconds + 1.5


def test_worker_survives_terminated_database_connections(in_process, world: World, conn: psycopg.Connection,
                                                         db_url: str) -> None:
    """After every worker and relay connection is killed with pg_terminate_backend, new jobs still run."""
    in_process()
    first = enqueue(conn, world.asset, params={"tag": "1"})
    wait_status(conn, first, "completed")
    killed = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE 'contentforge-%%'").fetchone()["n"]
    assert killed >= 2  # the relay's LISTEN connection and at least one worker connection
    killed_at = time.monotonic()
    second = enqueue(conn, world.asset, params={"tag": "2"})
    wait_status(conn, second, "completed", timeout=15)
    print(f"pg connection loss recovery: {time.monotonic() - killed_at:.2f} s")


def test_running_job_is_not_lost_when_its_connection_dies(in_process, world: World,
                                                          conn: psycopg.Connection) -> None:
    """A job whose worker connections are killed while it runs still completes, on its first attempt."""
    in_process()
    job_id = enqueue(conn, world.asset, params={"sleep_seconds": 1.5})
    wait_status(conn, job_id, "running")
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND application_name LIKE 'contentforge-%%'")
    row = wait_status(conn, job_id, "completed", timeout=15)
    assert row["attempts"] == 1


def test_priority_ten_enqueued_last_starts_first(in_process, world: World, conn: psycopg.Connection) -> None:
    """With a backlog, a priority-10 job enqueued after priority-1 jobs is started before all of them."""
    low = [enqueue(conn, world.asset, params={"tag": str(i)}, priority=1) for i in range(5)]
    high = enqueue(conn, world.asset, params={"tag": "high"}, priority=10)
    in_process(threads=1)
    for j in [*low, high]:
        wait_status(conn, j, "completed")
    started = {j: job(conn, j)["started_at"] for j in [*low, high]}
    assert started[high] < min(started[j] for j in low)
    assert [started[j] for j in low] == sorted(started[j] for j in low)  # FIFO within a priority


@pytest.mark.parametrize("job_type", ["noop"])
def test_asset_rolls_up_its_jobs(in_process, world: World, conn: psycopg.Connection, job_type: str) -> None:
    """The asset shows processing while jobs run, then failed with the reason when one failed for good."""
    ok = enqueue(conn, world.asset, job_type, params={"sleep_seconds": 0.3})
    bad = enqueue(conn, world.asset, job_type, params={"fail": "permanent"})
    asset = conn.execute("SELECT processing_status FROM assets WHERE id = %s", (world.asset,)).fetchone()
    assert asset["processing_status"] == "processing"
    in_process()
    wait_status(conn, ok, "completed")
    wait_status(conn, bad, "failed")
    asset = conn.execute("SELECT processing_status, processing_progress, processing_error FROM assets "
                         "WHERE id = %s", (world.asset,)).fetchone()
    assert asset["processing_status"] == "failed"
    assert asset["processing_progress"] == 100
    assert "failure requested" in asset["processing_error"]
    # Parameters first: a woken worker may claim the retried job before a later statement.
    conn.execute("UPDATE asset_processing_jobs SET input_params = '{}' WHERE id = %s", (bad,))
    conn.execute("SELECT retry_asset_job(%s)", (bad,))
    wait_status(conn, bad, "completed")
    asset = conn.execute("SELECT processing_status, processing_error FROM assets WHERE id = %s",
                         (world.asset,)).fetchone()
    assert (asset["processing_status"], asset["processing_error"]) == ("ready", None)
