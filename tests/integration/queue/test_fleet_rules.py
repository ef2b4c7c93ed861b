"""Pools, pauses, tenant caps and the scaling signal in SQL (migration 0019), called the way the
workers, the relay, KEDA and operators call them."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests import factories as f
from tests.integration.queue.conftest import World, enqueue
from tests.integration.schema.api import api, attempt


def claim(conn: psycopg.Connection, types: list[str] | None = None, worker: str = "w") -> dict[str, Any] | None:
    return conn.execute("SELECT * FROM app_private.claim_job(%s, 30, %s::text[])", (worker, types)).fetchone()


def video(conn: psycopg.Connection, world: World) -> uuid.UUID:
    return f.asset(conn, world.tenant, world.user, file_type="video", original_filename="v.mp4", mime_type="video/mp4")


def backlog(conn: psycopg.Connection, types: str) -> dict[str, Any]:
    return conn.execute("SELECT * FROM app_private.pool_backlog(%s)", (types,)).fetchone()


def test_a_pool_claims_only_its_job_types(conn: psycopg.Connection, world: World) -> None:
    """A claim for thumbnail and metadata takes those, never the transcode queued before them at a higher priority."""
    vid = video(conn, world)
    transcode = enqueue(conn, vid, "transcode", priority=9)
    thumb = enqueue(conn, vid, "thumbnail", priority=5)
    meta = enqueue(conn, vid, "metadata", priority=3)
    got = [claim(conn, ["thumbnail", "metadata"]) for _ in range(3)]
    assert [g["id"] if g else None for g in got] == [thumb, meta, None]
    assert claim(conn, ["transcode", "transcript"])["id"] == transcode


def test_a_claim_without_a_pool_takes_every_type(conn: psycopg.Connection, world: World) -> None:
    """The two-argument claim and a NULL pool keep the behaviour from before pools: every type, by priority."""
    vid = video(conn, world)
    transcode = enqueue(conn, vid, "transcode", priority=9)
    thumb = enqueue(conn, vid, "thumbnail", priority=5)
    assert conn.execute("SELECT id FROM app_private.claim_job('w', 30)").fetchone()["id"] == transcode
    assert claim(conn, None)["id"] == thumb


def test_tenant_fairness_holds_inside_a_pool(conn: psycopg.Connection, world: World) -> None:
    """Inside a pool the tenant with fewer running jobs goes first, though its job is younger."""
    other = f.tenant(conn)
    other_asset = f.asset(conn, other, None)
    first = [enqueue(conn, world.asset, "noop", params={"tag": str(i)}) for i in range(3)]
    late = enqueue(conn, other_asset, "noop", params={"tag": "late"})
    assert claim(conn, ["noop"])["id"] == first[0]
    assert claim(conn, ["noop"])["id"] == late  # world's tenant now runs one; the other runs none


def test_paused_job_type_stays_pending_and_resume_notifies(conn: psycopg.Connection, world: World,
                                                           db_url: str) -> None:
    """A paused job type is not claimed (by pool or not) nor counted ready; resuming it NOTIFYs the relay."""
    job = enqueue(conn, world.asset, "noop")
    assert conn.execute("SELECT app_private.pause_jobs('noop', NULL, 'incident') AS changed").fetchone()["changed"] is True
    assert conn.execute("SELECT app_private.pause_jobs('noop') AS changed").fetchone()["changed"] is False  # already paused
    assert claim(conn, None) is None and claim(conn, ["noop"]) is None
    assert backlog(conn, "{noop}")["ready"] == 0
    assert conn.execute("SELECT status FROM asset_processing_jobs WHERE id = %s", (job,)).fetchone()["status"] == "pending"
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN contentforge_jobs")
        assert conn.execute("SELECT app_private.resume_jobs('noop') AS changed").fetchone()["changed"] is True
        assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == ["contentforge_jobs"]
    assert claim(conn, ["noop"])["id"] == job


def test_paused_tenant_and_paused_type_of_a_tenant(conn: psycopg.Connection, world: World) -> None:
    """A paused tenant's jobs wait while another tenant's run; a type paused for one tenant only holds that pair."""
    other = f.tenant(conn)
    other_asset = f.asset(conn, other, None)
    mine = enqueue(conn, world.asset, "noop")
    theirs = enqueue(conn, other_asset, "noop")
    conn.execute("SELECT app_private.pause_jobs(p_tenant_id => %s)", (world.tenant,))
    assert claim(conn, None)["id"] == theirs
    assert claim(conn, None) is None
    conn.execute("SELECT app_private.resume_jobs(p_tenant_id => %s)", (world.tenant,))
    conn.execute("SELECT app_private.pause_jobs('noop', %s)", (world.tenant,))
    assert claim(conn, None) is None and claim(conn, ["noop"]) is None
    vid = video(conn, world)
    thumb = enqueue(conn, vid, "thumbnail")
    assert claim(conn, None)["id"] == thumb  # only noop is paused for this tenant
    conn.execute("SELECT app_private.resume_jobs('noop', %s)", (world.tenant,))
    assert claim(conn, ["noop"])["id"] == mine


def test_pause_refuses_unknown_scopes(conn: psycopg.Connection) -> None:
    """Pausing nothing, an unknown job type or a missing tenant is refused with 22023."""
    for call in ("SELECT app_private.pause_jobs()", "SELECT app_private.pause_jobs('nope')",
                 f"SELECT app_private.pause_jobs(p_tenant_id => '{uuid.uuid4()}')"):
        with pytest.raises(psycopg.Error) as info:
            conn.execute(call)
        assert info.value.sqlstate == "22023"


def test_tenant_cap_stops_claims_at_the_cap(conn: psycopg.Connection, world: World) -> None:
    """A tenant capped at 2 gets two jobs running and no third; another tenant still gets its job."""
    other_asset = f.asset(conn, f.tenant(conn), None)
    mine = [enqueue(conn, world.asset, "noop", params={"tag": str(i)}) for i in range(4)]
    conn.execute("SELECT app_private.set_tenant_job_limit(%s, 2)", (world.tenant,))
    theirs = enqueue(conn, other_asset, "noop")
    got = {claim(conn, None)["id"] for _ in range(3)}
    assert got == {mine[0], mine[1], theirs}
    assert claim(conn, None) is None
    conn.execute("SELECT app_private.complete_job(%s, 'w', '{}')", (mine[0],))
    assert claim(conn, ["noop"])["id"] == mine[2]
    conn.execute("SELECT app_private.set_tenant_job_limit(%s, NULL)", (world.tenant,))
    assert claim(conn, None)["id"] == mine[3]


def test_cap_is_refused_below_one_and_for_missing_tenants(conn: psycopg.Connection) -> None:
    """A cap of 0 or for a tenant that does not exist is refused with 22023."""
    tenant = f.tenant(conn)
    for call, args in (("SELECT app_private.set_tenant_job_limit(%s, 0)", (tenant,)),
                       ("SELECT app_private.set_tenant_job_limit(%s, 2)", (uuid.uuid4(),))):
        with pytest.raises(psycopg.Error) as info:
            conn.execute(call, args)
        assert info.value.sqlstate == "22023"


def test_capped_claim_refuses_repeatable_read(db_url: str, conn: psycopg.Connection, world: World) -> None:
    """A claim for a capped tenant inside a REPEATABLE READ transaction is refused rather than counting stale rows."""
    enqueue(conn, world.asset, "noop")
    conn.execute("SELECT app_private.set_tenant_job_limit(%s, 2)", (world.tenant,))
    with psycopg.connect(db_url) as c:
        c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with pytest.raises(psycopg.Error, match="READ COMMITTED"):
            c.execute("SELECT * FROM app_private.claim_job('w', 30, NULL)").fetchall()


def test_pool_backlog_counts_ready_unpaused_jobs_of_the_pool(conn: psycopg.Connection, world: World) -> None:
    """pool_backlog counts pending, due, unpaused jobs of the listed types and the oldest one's age."""
    vid = video(conn, world)
    for jt in ("thumbnail", "metadata", "transcode"):
        enqueue(conn, vid, jt)
    conn.execute("UPDATE asset_processing_jobs SET run_after = now() - interval '90 seconds' WHERE job_type = 'thumbnail'")
    conn.execute("UPDATE asset_processing_jobs SET run_after = now() + interval '1 hour' WHERE job_type = 'metadata'")
    light = backlog(conn, "{thumbnail,metadata}")
    assert light["ready"] == 1 and 89 < light["oldest_ready_seconds"] < 200
    assert backlog(conn, "{transcode,transcript}")["ready"] == 1
    conn.execute("SELECT app_private.pause_jobs('thumbnail')")
    assert dict(backlog(conn, "{thumbnail,metadata}")) == {"ready": 0, "oldest_ready_seconds": 0.0}
    # What KEDA's PostgreSQL scaler runs:
    assert conn.execute("SELECT ready FROM app_private.pool_backlog('{transcode,transcript}')").fetchone() == {"ready": 1}


def test_job_type_stats_show_unserved_types(conn: psycopg.Connection, world: World) -> None:
    """jobs stats' query names the live pools serving each type; a stale report serves nothing."""
    from schema.named_queries import queries

    conn.execute("SELECT app_private.register_worker_pool('s1', 'light', 'q-light', '{metadata,thumbnail,optimize}', 4)")
    conn.execute("SELECT app_private.register_worker_pool('s2', 'heavy', 'q-heavy', '{transcode,transcript}', 2)")
    conn.execute("UPDATE app_private.worker_pools SET last_seen = now() - interval '1 hour' WHERE supervisor_id = 's2'")
    rows = {r["job_type"]: r for r in conn.execute(queries("queue")["job_type_stats"], {"stale_seconds": 20})}
    assert rows["thumbnail"]["pools"] == ["light"] and rows["transcode"]["pools"] == []
    live = conn.execute("SELECT * FROM app_private.live_worker_pools(20)").fetchall()
    assert [(p["pool"], p["threads"]) for p in live] == [("light", 4)]
    assert conn.execute("SELECT count(*) FROM app_private.worker_pools").fetchone()["count"] == 1  # stale deleted


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_no_api_role_reaches_the_operator_knobs(db_url: str, supabase_roles: None, role: str,
                                                conn: psycopg.Connection, world: World) -> None:
    """anon, authenticated and service_role can neither call the 0019 functions nor write their tables."""
    user = world.user if role == "authenticated" else None
    with api(db_url, user, role=role) as c:
        for query in (
            "SELECT app_private.pause_jobs('noop')",
            "SELECT app_private.resume_jobs('noop')",
            f"SELECT app_private.set_tenant_job_limit('{world.tenant}', 1)",
            "SELECT * FROM app_private.pool_backlog('{noop}')",
            "SELECT * FROM app_private.claim_job('w', 30, '{noop}')",
            "SELECT app_private.register_worker_pool('s', 'light', 'q', NULL, 1)",
            "INSERT INTO app_private.job_pauses (job_type) VALUES ('noop')",
            f"INSERT INTO app_private.tenant_job_limits (tenant_id, max_running) VALUES ('{world.tenant}', 1)",
            "DELETE FROM app_private.tenant_job_limits",
        ):
            assert attempt(c, query) == "42", query
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as owner:
        assert owner.execute("SELECT count(*) FROM app_private.job_pauses").fetchone()["count"] == 0


def test_a_claim_passes_over_a_capped_tenant_whose_claim_is_in_flight(db_url: str, conn: psycopg.Connection,
                                                                      world: World) -> None:
    """While one claim of a capped tenant is uncommitted, another claim neither waits nor over-claims:
    it takes the next tenant's job, and after the first commits the cap still holds."""
    conn.execute("SET lock_timeout = '5s'")  # a claim that waited for the lock would fail, not hang
    other_asset = f.asset(conn, f.tenant(conn), None)
    mine = [enqueue(conn, world.asset, "noop", params={"tag": str(i)}) for i in range(3)]
    theirs = enqueue(conn, other_asset, "noop")
    conn.execute("SELECT app_private.set_tenant_job_limit(%s, 1)", (world.tenant,))
    conn.execute("UPDATE asset_processing_jobs SET run_after = run_after - interval '1 hour' WHERE id = ANY(%s)",
                 (mine,))  # the capped tenant's jobs are older: fairness would pick them first
    with psycopg.connect(db_url, row_factory=dict_row) as first:  # a transaction left open
        got = first.execute("SELECT * FROM app_private.claim_job('a', 30, NULL)").fetchone()
        assert got["id"] == mine[0]
        assert claim(conn, None, worker="b")["id"] == theirs  # no wait on the first claim's lock
        assert claim(conn, None, worker="b") is None
        first.commit()
    assert claim(conn, None, worker="b") is None  # capped at 1, and 1 runs
