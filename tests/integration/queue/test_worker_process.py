"""The real `contentforge worker` in subprocesses: SIGKILL mid-job, graceful SIGTERM, crash loops."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from tests.integration.queue.conftest import World, enqueue, job, wait_status

pytestmark = pytest.mark.slow


def test_sigkill_mid_job_is_retried_by_another_worker(spawn_worker, world: World, conn: psycopg.Connection) -> None:
    """A worker killed with SIGKILL mid-job leaves a lease that expires; another worker then runs the job."""
    first = spawn_worker()
    job_id = enqueue(conn, world.asset, params={"sleep_seconds": 30})
    running = wait_status(conn, job_id, "running", timeout=15)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    conn.execute("UPDATE asset_processing_jobs SET input_params = '{\"sleep_seconds\": 0.1}' WHERE id = %s", (job_id,))
    spawn_worker()
    row = wait_status(conn, job_id, "completed", timeout=30)
    recovery = time.monotonic() - killed_at
    print(f"kill -9 recovery: {recovery:.2f} s (lease 3 s)")
    assert row["attempts"] == 2
    assert row["worker_id"] != running["worker_id"]
    assert recovery < 15


def test_sigterm_lets_a_running_job_finish(spawn_worker, world: World, conn: psycopg.Connection) -> None:
    """On SIGTERM a job that ends within the grace period completes, and the worker exits 0."""
    proc = spawn_worker(CONTENTFORGE_SHUTDOWN_GRACE_SECONDS="10")
    job_id = enqueue(conn, world.asset, params={"sleep_seconds": 2})
    wait_status(conn, job_id, "running", timeout=15)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    row = job(conn, job_id)
    assert (row["status"], row["attempts"]) == ("completed", 1)


def test_sigterm_releases_a_job_that_outlasts_the_grace(spawn_worker, world: World, conn: psycopg.Connection) -> None:
    """On SIGTERM a job longer than the grace period is handed back (pending, attempt not counted)."""
    proc = spawn_worker(CONTENTFORGE_SHUTDOWN_GRACE_SECONDS="1")
    job_id = enqueue(conn, world.asset, params={"sleep_seconds": 30})
    wait_status(conn, job_id, "running", timeout=15)
    proc.send_signal(signal.SIGTERM)
    # Not a timing check (that failed once on a machine at load 13): a worker that waited for the
    # 30-second job would leave it completed, and one that kept it would leave it running.
    assert proc.wait(timeout=25) == 0
    row = job(conn, job_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("pending", 0, None)


def test_job_that_crashes_its_worker_ends_failed(spawn_worker, world: World, conn: psycopg.Connection) -> None:
    """A job that kills its worker process on every attempt fails for good after max_attempts."""
    conn.execute("UPDATE app_private.job_types SET default_max_attempts = 2 WHERE job_type = 'noop'")
    job_id = enqueue(conn, world.asset, params={"crash": True})
    spawn_worker()
    row = wait_status(conn, job_id, "failed", timeout=40)
    assert row["attempts"] == 2
    assert "stopped responding during each of 2 attempts" in row["error_message"]
