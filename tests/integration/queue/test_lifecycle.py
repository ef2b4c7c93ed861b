"""The row's rules: retries with backoff, permanent failure, cancellation, purge, idempotency,
job type vs file type, who may enqueue, and tenant fairness of the claim."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from contentforge import api
from tests import factories as f
from tests.integration.queue.conftest import World, enqueue, job, wait_status
from tests.integration.schema.api import api as api_caller


def test_transient_failure_retries_with_growing_backoff_then_fails(in_process, world: World,
                                                                   conn: psycopg.Connection) -> None:
    """A job that fails transiently is retried after growing delays and fails for good after max_attempts."""
    job_id = enqueue(conn, world.asset, params={"fail": "transient"})
    in_process(retry_base_seconds=0.3, retry_max_seconds=5)
    delays = []
    last_attempt = 0
    row = job(conn, job_id)
    while row["status"] != "failed":
        row = job(conn, job_id)
        if row["status"] == "pending" and row["attempts"] > last_attempt:
            last_attempt = row["attempts"]
            delays.append((row["run_after"] - row["updated_at"]).total_seconds())
        if last_attempt > 3:
            break
    row = wait_status(conn, job_id, "failed", timeout=10)
    assert row["attempts"] == 3
    assert row["error_message"] == "transient failure requested by the job's parameters (gave up after 3 attempts)"
    assert len(delays) == 2
    assert 0.2 <= delays[0] <= 0.4 and 0.45 <= delays[1] <= 0.75  # 0.3 s then 0.6 s, ±25 % jitter


def test_permanent_failure_fails_at_once_with_a_readable_message(in_process, world: World,
                                                                 conn: psycopg.Connection) -> None:
    """A permanent error fails the job on its first attempt, with the error's text as error_message."""
    job_id = enqueue(conn, world.asset, params={"fail": "permanent"})
    in_process()
    row = wait_status(conn, job_id, "failed")
    assert row["attempts"] == 1
    assert row["error_message"] == "failure requested by the job's parameters"
    assert row["error_details"]["error_class"] == "jobs.errors.PermanentJobError"


def test_pending_job_cancelled_never_runs(in_process, world: World, conn: psycopg.Connection) -> None:
    """A job cancelled before any worker saw it is never claimed."""
    job_id = enqueue(conn, world.asset)
    api.cancel(conn, job_id)
    done = enqueue(conn, world.asset, params={"tag": "2"})
    in_process(threads=1)
    wait_status(conn, done, "completed")
    assert job(conn, job_id)["started_at"] is None


def test_purge_deletes_finished_jobs_past_retention_only(conn: psycopg.Connection, world: World) -> None:
    """Purging removes completed jobs older than the retention, keeps failed ones twice as long, and
    never touches pending ones."""
    ids = {name: enqueue(conn, world.asset, params={"tag": str(name)})
           for name in ("old_done", "new_done", "old_failed", "older_failed", "pending")}
    for name, status, age in (("old_done", "completed", 8), ("new_done", "completed", 1),
                              ("old_failed", "failed", 10), ("older_failed", "failed", 15)):
        conn.execute("UPDATE asset_processing_jobs SET status = %s, completed_at = now() - make_interval(days => %s) "
                     "WHERE id = %s", (status, age, ids[name]))
    purged = conn.execute("SELECT app_private.purge_finished_jobs(interval '7 days') AS n").fetchone()["n"]
    left = {r["id"] for r in conn.execute("SELECT id FROM asset_processing_jobs").fetchall()}
    assert purged == 2
    assert left == {ids["new_done"], ids["old_failed"], ids["pending"]}


def test_idempotency_key_returns_the_same_job(conn: psycopg.Connection, world: World) -> None:
    """The same idempotency key returns the first job, even after it finished; reusing it elsewhere fails."""
    first = api.enqueue(conn, world.asset, "noop", {"tag": "1"}, idempotency_key="upload-42")
    conn.execute("UPDATE asset_processing_jobs SET status = 'completed', completed_at = now() WHERE id = %s", (first,))
    assert api.enqueue(conn, world.asset, "noop", {"tag": "1"}, idempotency_key="upload-42") == first
    other = f.asset(conn, world.tenant, world.user)
    with pytest.raises(psycopg.errors.UniqueViolation, match="already used"):
        api.enqueue(conn, other, "noop", idempotency_key="upload-42")


def test_same_active_job_is_not_queued_twice(conn: psycopg.Connection, world: World) -> None:
    """Without a key, the same asset, type and parameters give the pending job instead of a second one."""
    assert api.enqueue(conn, world.asset, "noop", {"tag": "1"}) == api.enqueue(conn, world.asset, "noop", {"tag": "1"})
    assert api.enqueue(conn, world.asset, "noop", {"tag": "2"}) != api.enqueue(conn, world.asset, "noop", {"tag": "1"})


def test_enqueue_many_creates_one_job_per_type(conn: psycopg.Connection, world: World) -> None:
    """One call queues several job types for an asset, each with its own parameters."""
    jobs = api.enqueue_many(conn, world.asset, ["metadata", "thumbnail"], {"thumbnail": {"widths": [320]}},
                            idempotency_key="up-7")
    assert set(jobs) == {"metadata", "thumbnail"}
    assert api.get_job(conn, jobs["thumbnail"])["input_params"] == {"widths": [320]}
    assert api.get_job(conn, jobs["metadata"])["idempotency_key"] == "up-7:metadata"


def test_job_type_must_fit_the_file_type(conn: psycopg.Connection, world: World) -> None:
    """A transcode of an image is refused with a message that names the accepted file types."""
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='"transcode" does not apply to image assets'):
        api.enqueue(conn, world.asset, "transcode")


def test_api_callers_need_author_rights(conn: psycopg.Connection, world: World, db_url: str,
                                        supabase_roles: None) -> None:
    """Through the API, a tenant's author may enqueue; a plain member (403) and an outsider (404) may not."""
    reader = f.user(conn)
    f.member(conn, world.tenant, reader, "member")
    outsider = f.user(conn)
    with api_caller(db_url, world.user) as c:
        assert isinstance(api.enqueue(c, world.asset, "noop"), uuid.UUID)
    with api_caller(db_url, reader) as c, pytest.raises(psycopg.errors.InsufficientPrivilege, match="author"):
        api.enqueue(c, world.asset, "noop", {"tag": "reader"})
    # An outsider cannot tell the asset from one that does not exist (PostgREST's 404).
    with api_caller(db_url, outsider) as c, pytest.raises(psycopg.Error, match="does not exist") as info:
        api.enqueue(c, world.asset, "noop", {"tag": "outsider"})
    assert info.value.sqlstate == "PT404"
    with api_caller(db_url, reader) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute("SELECT app_private.claim_job('me', 30)")


def _claim(conn: psycopg.Connection) -> dict:
    return conn.execute("SELECT * FROM app_private.claim_job('w1', 30)").fetchone()


def _complete(conn: psycopg.Connection, job_id: uuid.UUID) -> None:
    assert conn.execute("SELECT app_private.complete_job(%s, 'w1', '{}')", (job_id,)).fetchone()


def test_one_tenants_backlog_does_not_delay_another_tenant(conn: psycopg.Connection, world: World) -> None:
    """With one worker thread and 10,000 jobs of tenant A queued first, tenant B's job runs second."""
    conn.execute("""
        SELECT enqueue_asset_job(asset_id => %s, job_type => 'noop', params => jsonb_build_object('tag', g::text))
        FROM generate_series(1, 10000) g""", (world.asset,))
    b = f.tenant(conn)
    b_asset = f.asset(conn, b, None)
    b_job = enqueue(conn, b_asset)
    conn.execute("ANALYZE asset_processing_jobs")
    first = _claim(conn)
    assert first["tenant_id"] == world.tenant
    _complete(conn, first["id"])
    second = _claim(conn)
    assert second["id"] == b_job


def test_tenant_with_fewer_running_jobs_goes_first(conn: psycopg.Connection, world: World) -> None:
    """While tenant A has a job running, a free thread takes tenant B's job before A's next one."""
    for n in range(3):
        enqueue(conn, world.asset, params={"tag": str(n)})
    b = f.tenant(conn)
    b_job = enqueue(conn, f.asset(conn, b, None))
    assert _claim(conn)["tenant_id"] == world.tenant  # A's oldest, still running
    assert _claim(conn)["id"] == b_job


def test_concurrent_completions_leave_the_asset_ready(conn: psycopg.Connection, world: World,
                                                      db_url: str) -> None:
    """Two jobs of one asset completing in overlapping transactions leave it ready, not stuck in
    'processing' (each counted the other as running before 0015 locked the asset first)."""
    import threading

    jobs = api.enqueue_many(conn, world.asset, ["metadata", "thumbnail"])
    first, second = _claim(conn)["id"], _claim(conn)["id"]
    assert {first, second} == set(jobs.values())
    with psycopg.connect(db_url) as t1, psycopg.connect(db_url) as t2:
        t1.execute("SELECT app_private.complete_job(%s, 'w1', '{}')", (first,))  # not committed yet
        t2_pid = t2.info.backend_pid
        done = threading.Event()

        def complete_second() -> None:
            t2.execute("SELECT app_private.complete_job(%s, 'w1', '{}')", (second,))
            t2.commit()
            done.set()

        worker = threading.Thread(target=complete_second)
        worker.start()
        # Wait until the second completion is blocked on a lock the first one holds.
        while not done.is_set() and not conn.execute(
                "SELECT wait_event_type = 'Lock' AS blocked FROM pg_stat_activity WHERE pid = %s",
                (t2_pid,)).fetchone()["blocked"]:
            threading.Event().wait(0.01)
        t1.commit()
        worker.join()
    row = conn.execute("SELECT processing_status::text AS status, processing_progress FROM assets "
                       "WHERE id = %s", (world.asset,)).fetchone()
    assert row == {"status": "ready", "processing_progress": 100}
