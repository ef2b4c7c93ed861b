"""The outbox: events written with the change that causes them, stable ids, nothing for a rollback."""

from __future__ import annotations

import psycopg
import pytest

from tests.integration.webhooks.conftest import Tenant, add_endpoint, drain, finish_job
from tests.integration.webhooks.receiver import Receiver

pytestmark = pytest.mark.webhooks


def _events(conn: psycopg.Connection) -> list[str]:
    return [r["event_type"] for r in conn.execute("SELECT event_type FROM webhook_events ORDER BY created_at")]


def test_job_and_asset_changes_write_events(conn: psycopg.Connection, tenant: Tenant) -> None:
    """Enqueue then complete a job: processing started, job completed, asset ready, in that order."""
    finish_job(conn, tenant.asset)
    assert _events(conn) == ["asset.processing_started", "job.completed", "asset.ready"]


def test_metadata_job_announces_metadata_with_its_values(conn: psycopg.Connection, tenant: Tenant) -> None:
    """A metadata job's completion writes asset.metadata_available carrying what the worker stored."""
    job = conn.execute("SELECT enqueue_asset_job(%s, 'metadata') AS id", (tenant.asset,)).fetchone()["id"]
    conn.execute("SELECT app_private.claim_job('w', 30)")
    with conn.transaction():  # as the worker does: complete, then write the outputs, one commit
        conn.execute("SELECT app_private.complete_job(%s, 'w', '{}')", (job,))
        conn.execute("""UPDATE assets SET metadata = metadata || '{"width": 640}' WHERE id = %s""", (tenant.asset,))
    row = conn.execute("SELECT data FROM webhook_events WHERE event_type = 'asset.metadata_available'").fetchone()
    assert row["data"]["metadata"] == {"width": 640}
    assert _events(conn) == ["asset.processing_started", "job.completed", "asset.metadata_available", "asset.ready"]


def test_failed_job_and_asset(conn: psycopg.Connection, tenant: Tenant) -> None:
    """A job failing for good writes job.failed with its message, then asset.failed."""
    finish_job(conn, tenant.asset, fail=True)
    assert _events(conn) == ["asset.processing_started", "job.failed", "asset.failed"]
    data = conn.execute("SELECT data FROM webhook_events WHERE event_type = 'job.failed'").fetchone()["data"]
    assert data["error_message"] == "broken input"


def test_transient_failure_with_attempts_left_writes_nothing(conn: psycopg.Connection, tenant: Tenant) -> None:
    """A failure that will be retried is not an event (the job is not finished)."""
    job = conn.execute("SELECT enqueue_asset_job(%s, 'noop') AS id", (tenant.asset,)).fetchone()["id"]
    conn.execute("SELECT app_private.claim_job('w', 30)")
    assert conn.execute("SELECT app_private.fail_job(%s, 'w', 'flaky', NULL, true, 0) AS s", (job,)).fetchone()["s"] == "pending"
    assert _events(conn) == ["asset.processing_started"]


def test_rolled_back_change_writes_and_sends_nothing(conn: psycopg.Connection, tenant: Tenant, receiver: Receiver,
                                                     dispatcher, db_url: str) -> None:
    """A completion that rolls back leaves no event, no delivery, no notification, and nothing is posted."""
    receiver.start()
    add_endpoint(conn, tenant.id, receiver.url)
    job = conn.execute("SELECT enqueue_asset_job(%s, 'noop') AS id", (tenant.asset,)).fetchone()["id"]
    conn.execute("SELECT app_private.claim_job('w', 30)")
    drain(dispatcher)
    before = len(receiver.received)
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN contentforge_events")
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute("SELECT app_private.complete_job(%s, 'w', '{}')", (job,))
            raise RuntimeError("the worker's transaction fails before commit")
        assert list(listener.notifies(timeout=0.2)) == []
    assert conn.execute("SELECT count(*) AS n FROM webhook_events WHERE event_type <> 'asset.processing_started'").fetchone()["n"] == 0
    assert drain(dispatcher) == 0
    assert len(receiver.received) == before


def test_listen_channel_announces_committed_event_ids(conn: psycopg.Connection, tenant: Tenant, db_url: str) -> None:
    """LISTEN contentforge_events receives the id of each event, at commit."""
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN contentforge_events")
        finish_job(conn, tenant.asset)
        got = [n.payload for n in listener.notifies(timeout=1, stop_after=3)]
    ids = [str(r["id"]) for r in conn.execute("SELECT id FROM webhook_events ORDER BY created_at")]
    assert got == ids


def test_events_tail_prints_each_committed_event(conn: psycopg.Connection, tenant: Tenant, db_url: str) -> None:
    """`contentforge events tail` prints one JSON line per event, ids in commit order."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DATABASE_URL": db_url, "CONTENTFORGE_LOG_FORMAT": "json"}
    with subprocess.Popen([sys.executable, "-m", "cli", "events", "tail", "--tenant", str(tenant.id)],
                          env=env, cwd=Path(__file__).resolve().parents[3], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr is not None and "listening" in proc.stderr.readline()
            finish_job(conn, tenant.asset)
            assert proc.stdout is not None
            lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
        finally:
            proc.terminate()
            proc.wait(10)
    ids = [str(r["id"]) for r in conn.execute("SELECT id FROM webhook_events ORDER BY created_at")]
    assert [e["id"] for e in lines] == ids
    assert [e["type"] for e in lines] == ["asset.processing_started", "job.completed", "asset.ready"]
    assert proc.returncode == 0
