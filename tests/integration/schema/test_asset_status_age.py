"""Assets are aged by when their processing status changed (migrations 0023, 0024), and a roll-up
that only moves an asset's progress is a heap-only (HOT) update: no new entry in any asset index."""

from __future__ import annotations

import uuid

import psycopg

from tests import factories as f
from tests.integration.queue.conftest import enqueue


def age(conn: psycopg.Connection, asset: uuid.UUID, interval: str) -> None:
    """Move the asset's status age back, as only an owner with triggers off can."""
    conn.execute("SET session_replication_role = replica")
    conn.execute("UPDATE assets SET status_changed_at = now() - %s::interval WHERE id = %s", (interval, asset))
    conn.execute("RESET session_replication_role")


def asset_row(conn: psycopg.Connection, asset: uuid.UUID) -> dict:
    return conn.execute("SELECT processing_status, processing_progress, status_changed_at, updated_at "
                        "FROM assets WHERE id = %s", (asset,)).fetchone()


def test_status_changed_at_moves_with_the_status_only(conn: psycopg.Connection) -> None:
    tenant = f.tenant(conn)
    asset = f.asset(conn, tenant, None, processing_status="uploading")
    age(conn, asset, "2 days")
    conn.execute("UPDATE assets SET metadata = '{\"edited\": true}' WHERE id = %s", (asset,))
    row = asset_row(conn, asset)
    assert row["status_changed_at"] < row["updated_at"] - __import__("datetime").timedelta(days=1)
    conn.execute("UPDATE assets SET processing_status = 'processing' WHERE id = %s", (asset,))
    row = asset_row(conn, asset)
    assert row["status_changed_at"] == row["updated_at"]  # both now() of that statement's transaction


def test_status_changed_at_cannot_be_written(conn: psycopg.Connection) -> None:
    """An insert or an update that names the column gets the database's time: an API role allowed
    to edit an asset cannot keep it away from the clean-up."""
    tenant = f.tenant(conn)
    asset = f.asset(conn, tenant, None, processing_status="uploading", status_changed_at="infinity")
    first = asset_row(conn, asset)["status_changed_at"]
    assert first.year < 3000
    conn.execute("UPDATE assets SET status_changed_at = 'infinity', metadata = '{}' WHERE id = %s", (asset,))
    assert asset_row(conn, asset)["status_changed_at"] == first


def test_an_upload_stuck_for_two_days_expires_though_it_was_edited_today(conn: psycopg.Connection) -> None:
    """The age is the status's: an edit of the asset (which resets updated_at) does not keep a stuck
    upload alive, and a fresh upload is left alone."""
    tenant = f.tenant(conn)
    stuck = f.asset(conn, tenant, None, processing_status="uploading")
    fresh = f.asset(conn, tenant, None, processing_status="uploading")
    age(conn, stuck, "2 days")
    conn.execute("UPDATE assets SET metadata = '{\"edited\": true}' WHERE id = %s", (stuck,))
    assert conn.execute("SELECT app_private.expire_stuck_uploads() AS n").fetchone()["n"] == 1
    assert asset_row(conn, stuck)["processing_status"] == "failed"
    assert asset_row(conn, fresh)["processing_status"] == "uploading"


def test_a_progress_roll_up_is_a_hot_update(conn: psycopg.Connection) -> None:
    """A job's progress report rolls up into its asset without touching any indexed column."""
    tenant = f.tenant(conn)
    asset = f.asset(conn, tenant, None)
    jobs = [enqueue(conn, asset, "noop", params={"tag": str(i)}) for i in range(2)]
    conn.execute("SELECT * FROM app_private.claim_job('w', 30)")
    with conn.transaction():
        before = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                              "WHERE relid = 'public.assets'::regclass").fetchone()
        running = conn.execute("SELECT id FROM asset_processing_jobs WHERE id = ANY(%s) AND status = 'running'",
                               (jobs,)).fetchone()["id"]
        assert conn.execute("SELECT app_private.heartbeat_job(%s, 'w', 30, 50) AS ours", (running,)).fetchone()["ours"]
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred roll-up now, inside this transaction
        after = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                             "WHERE relid = 'public.assets'::regclass").fetchone()
        assert asset_row(conn, asset)["processing_progress"] == 25  # (50 + 0) / 2
    assert after["n_tup_upd"] - before["n_tup_upd"] == 1
    assert after["n_tup_hot_upd"] - before["n_tup_hot_upd"] == 1
