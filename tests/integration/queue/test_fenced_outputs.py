"""Fenced outputs: each attempt writes keys of its own, and only the attempt holding the job's claim
token can point the asset at its files (migration 0021, contentforge.output_keys)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from contentforge.settings import Settings
from contentforge.storage import open_storage
from tests.integration.queue.conftest import World, enqueue, job, wait_status


@pytest.fixture(autouse=True)
def _test_jobs(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE app_private.job_types SET enabled = true WHERE test_only")


def _variant(conn: psycopg.Connection, asset: uuid.UUID) -> dict:
    return conn.execute("SELECT variants FROM assets WHERE id = %s", (asset,)).fetchone()["variants"]["noop.bin"]


def test_every_claim_gets_a_new_token(conn: psycopg.Connection, world: World, settings: Settings) -> None:
    """A claim sets a fresh claim_token; a heartbeat keeps it; a re-claim after the lease expired replaces it."""
    from workers.claim import JobStore
    from workers.fence import LeaseRenewer

    job_id = enqueue(conn, world.asset, params={"output_bytes": 16})
    store = JobStore(settings.database_url or "", lease_seconds=30)
    renewer = LeaseRenewer(settings.database_url or "", lease_seconds=30, timeout_seconds=5)
    try:
        first = store.claim("w1")
        assert first is not None and first.claim_token is not None
        assert job(conn, job_id)["claim_token"] == first.claim_token
        assert renewer.renew(job_id, "w1", 10)
        assert job(conn, job_id)["claim_token"] == first.claim_token
        conn.execute("UPDATE asset_processing_jobs SET lease_expires_at = now() - interval '1 s' WHERE id = %s",
                     (job_id,))
        assert [r["job_id"] for r in store.reclaim_expired()] == [job_id]
        second = store.claim("w1")
        assert second is not None and second.id == job_id
        assert second.claim_token not in (None, first.claim_token)
    finally:
        renewer.close()
        store.close()


def test_outputs_are_stored_under_the_attempts_own_keys(in_process, conn: psycopg.Connection, world: World,
                                                        settings: Settings) -> None:
    """A completed job's file lies under {tenant}/{asset}/attempts/{claim token}/variants/, and the asset names it."""
    job_id = enqueue(conn, world.asset, params={"output_bytes": 64})
    in_process()
    done = wait_status(conn, job_id, "completed", timeout=20)
    key = _variant(conn, world.asset)["key"]
    assert key == f"{world.tenant}/{world.asset}/attempts/{done['claim_token']}/variants/noop.bin"
    assert open_storage(settings.storage_url or "").exists(key)


def test_an_attempt_that_lost_the_job_cannot_replace_the_winners_files(conn: psycopg.Connection, world: World,
                                                                      settings: Settings, tmp_path) -> None:
    """The first attempt, finishing after its lease was taken over, uploads beside the winner and leaves the asset alone.

    Both attempts run in the same worker thread (same worker_id), so only the claim token tells them
    apart: before migration 0021 the late attempt completed the job again and overwrote the
    winner's file under the shared deterministic key.
    """
    from workers.actors import run_claimed
    from workers.runtime import Runtime, worker_id

    job_id = enqueue(conn, world.asset, params={"output_bytes": 4096})
    rt = Runtime(settings, settings.database_url or "")
    storage = open_storage(settings.storage_url or "")
    try:
        me = worker_id()
        loser = rt.store.claim(me)
        assert loser is not None
        conn.execute("UPDATE asset_processing_jobs SET lease_expires_at = now() - interval '1 s' WHERE id = %s",
                     (job_id,))
        rt.store.reclaim_expired()
        winner = rt.store.claim(me)
        assert winner is not None and winner.id == loser.id and winner.claim_token != loser.claim_token
        assert run_claimed(rt, winner, me) == "completed"
        current = _variant(conn, world.asset)
        winners_bytes = tmp_path / "winner.bin"
        storage.get_file(current["key"], winners_bytes)

        assert run_claimed(rt, loser, me) == "lost"
    finally:
        rt.close()
    assert _variant(conn, world.asset) == current, "the asset still points at the winner's file"
    after = tmp_path / "after.bin"
    storage.get_file(current["key"], after)
    assert after.read_bytes() == winners_bytes.read_bytes()
    keys = storage.list(f"{world.tenant}/{world.asset}/attempts")
    assert keys == sorted([current["key"], f"{world.tenant}/{world.asset}/attempts/{loser.claim_token}/variants/noop.bin"])
    row = job(conn, job_id)
    assert row["status"] == "completed" and row["claim_token"] == winner.claim_token


def test_record_attempt_outputs_refuses_a_stale_token(conn: psycopg.Connection, world: World) -> None:
    """The SQL fence itself: a token other than the job's points the asset at nothing."""
    job_id = enqueue(conn, world.asset)
    conn.execute("SELECT * FROM app_private.claim_job('w', 30)")
    token = job(conn, job_id)["claim_token"]
    args = ('{"x": {"key": "k"}}', "{}", None, False, None, None)
    stale = conn.execute("SELECT app_private.record_attempt_outputs(%s, %s, %s, %s, %s, %s, %s, %s) AS ok",
                         (job_id, uuid.uuid4(), *args)).fetchone()
    assert stale["ok"] is False
    assert conn.execute("SELECT variants FROM assets WHERE id = %s", (world.asset,)).fetchone()["variants"] == {}
    fresh = conn.execute("SELECT app_private.record_attempt_outputs(%s, %s, %s, %s, %s, %s, %s, %s) AS ok",
                         (job_id, token, *args)).fetchone()
    assert fresh["ok"] is True
