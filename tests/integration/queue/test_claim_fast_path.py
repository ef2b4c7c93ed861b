"""The claim's fast path (migration 0022): one tenant ready at the best priority is claimed without
the fair walk of 0019, and every case the fast path cannot decide alone still goes through the walk
with the same result."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests import factories as f
from tests.integration.queue.conftest import World, enqueue


def claim(conn: psycopg.Connection, types: list[str] | None = None, worker: str = "w") -> dict[str, Any] | None:
    return conn.execute("SELECT * FROM app_private.claim_job(%s, 30, %s::text[])", (worker, types)).fetchone()


def walks(conn: psycopg.Connection, types: list[str] | None = None) -> tuple[uuid.UUID | None, int]:
    """Claim once; return the job's id and how many times the claim ran the walk."""
    conn.execute("SET track_functions = 'all'")

    def calls() -> int:  # calls not yet flushed to the cumulative statistics, this transaction's included
        return int(conn.execute("SELECT coalesce(sum(calls), 0) AS n FROM pg_stat_xact_user_functions "
                                "WHERE schemaname = 'app_private' AND funcname = 'claim_job_walk'").fetchone()["n"])

    # One transaction: a backend flushes its pending statistics only between transactions, so the
    # difference counts exactly this claim's calls.
    with conn.transaction():
        before = calls()
        got = claim(conn, types)
        return (got["id"] if got else None), calls() - before


def test_one_ready_tenant_is_claimed_without_the_walk(conn: psycopg.Connection, world: World) -> None:
    first = enqueue(conn, world.asset, "noop", params={"tag": "a"}, priority=7)
    enqueue(conn, world.asset, "noop", params={"tag": "b"}, priority=7)
    assert walks(conn) == (first, 0)
    assert walks(conn, ["noop"])[1] == 0


def test_two_ready_tenants_at_the_best_priority_go_through_the_walk(conn: psycopg.Connection, world: World) -> None:
    """The walk decides between tenants: neither runs a job nor was ever served, so the older ready
    job goes first; then the tenant with fewer running jobs, though its job is younger. Both claims
    see two tenants ready, so both run the walk."""
    other = f.asset(conn, f.tenant(conn), None)
    mine = [enqueue(conn, world.asset, "noop", params={"tag": str(i)}) for i in range(2)]
    theirs = enqueue(conn, other, "noop")
    conn.execute("UPDATE asset_processing_jobs SET run_after = now() - interval '1 hour' WHERE id = ANY(%s)", (mine,))
    assert [walks(conn) for _ in range(2)] == [(mine[0], 1), (theirs, 1)]


def test_a_tenant_ready_only_at_a_lower_priority_does_not_leave_the_fast_path(conn: psycopg.Connection,
                                                                             world: World) -> None:
    other = f.asset(conn, f.tenant(conn), None)
    enqueue(conn, other, "noop", priority=2)
    best = enqueue(conn, world.asset, "noop", priority=8)
    assert walks(conn) == (best, 0)


def test_delayed_jobs_are_not_ready(conn: psycopg.Connection, world: World) -> None:
    """A tenant whose only job at the best priority is delayed is passed over by both descents."""
    other = f.asset(conn, f.tenant(conn), None)
    delayed = enqueue(conn, other, "noop", priority=9)
    conn.execute("UPDATE asset_processing_jobs SET run_after = now() + interval '1 hour' WHERE id = %s", (delayed,))
    ready = enqueue(conn, world.asset, "noop", priority=9)
    assert walks(conn) == (ready, 0)
    assert claim(conn) is None


def test_a_claim_in_flight_sends_the_next_claim_to_a_lower_priority(db_url: str, conn: psycopg.Connection,
                                                                   world: World) -> None:
    """The only ready job at the best priority is locked by an uncommitted claim: the fast path's
    UPDATE skips it, and the walk takes the lower-priority job instead of returning nothing."""
    high = enqueue(conn, world.asset, "noop", params={"tag": "high"}, priority=9)
    low = enqueue(conn, world.asset, "noop", params={"tag": "low"}, priority=1)
    with psycopg.connect(db_url, row_factory=dict_row) as first:  # a transaction left open
        assert first.execute("SELECT id FROM app_private.claim_job('a', 30, NULL)").fetchone()["id"] == high
        assert walks(conn) == (low, 1)
        first.commit()


def test_a_capped_tenant_goes_through_the_walk(conn: psycopg.Connection, world: World) -> None:
    jobs = [enqueue(conn, world.asset, "noop", params={"tag": str(i)}) for i in range(2)]
    conn.execute("SELECT app_private.set_tenant_job_limit(%s, 1)", (world.tenant,))
    assert walks(conn) == (jobs[0], 1)
    assert walks(conn) == (None, 1)  # at its cap


def test_any_pause_goes_through_the_walk(conn: psycopg.Connection, world: World) -> None:
    other = f.tenant(conn)
    job = enqueue(conn, world.asset, "noop")
    conn.execute("SELECT app_private.pause_jobs(NULL, %s, 'another tenant')", (other,))
    assert walks(conn) == (job, 1)


def test_a_pool_claims_the_best_priority_of_its_types(conn: psycopg.Connection, world: World) -> None:
    vid = f.asset(conn, world.tenant, world.user, file_type="video", original_filename="v.mp4", mime_type="video/mp4")
    enqueue(conn, vid, "transcode", priority=9)
    meta = enqueue(conn, vid, "metadata", priority=3)
    thumb = enqueue(conn, vid, "thumbnail", priority=6)
    assert walks(conn, ["thumbnail", "metadata"]) == (thumb, 0)
    assert walks(conn, ["thumbnail", "metadata"]) == (meta, 0)
    assert walks(conn, ["thumbnail", "metadata"]) == (None, 0)


def test_a_light_pool_does_not_read_through_the_tenant_s_heavy_backlog(conn: psycopg.Connection,
                                                                       world: World) -> None:
    """200 transcodes of the same tenant and priority sort ahead of one thumbnail in jobs_claim_idx;
    the light pool's claim reaches the thumbnail through jobs_claim_type_idx, fetching a handful of
    rows, not the 200 (counted from the table's index-fetch statistics of this transaction)."""
    conn.execute("""WITH a AS (INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path)
                               SELECT %(t)s, 'v.mp4', 'video', 'video/mp4', 1, %(t)s::text || '/v/' || g
                               FROM generate_series(1, 200) g RETURNING id)
                    SELECT count(enqueue_asset_job(asset_id => a.id, job_type => 'transcode', priority => 5)) FROM a""",
                 {"t": world.tenant})
    conn.execute("UPDATE asset_processing_jobs SET run_after = now() - interval '1 hour'")
    vid = f.asset(conn, world.tenant, world.user, file_type="video", original_filename="v.mp4", mime_type="video/mp4")
    thumb = enqueue(conn, vid, "thumbnail", priority=5)
    with conn.transaction():
        fetched = "SELECT idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relid = 'public.asset_processing_jobs'::regclass"
        before = conn.execute(fetched).fetchone()["idx_tup_fetch"]
        got = walks(conn, ["thumbnail", "metadata"])
        after = conn.execute(fetched).fetchone()["idx_tup_fetch"]
    assert got == (thumb, 0)
    assert after - before < 20
