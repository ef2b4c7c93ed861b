"""Completions and claims of several threads in one call (migration 0025, workers.combiner).

The oracle for the combined call is the one-by-one path it replaces: the same claims made with
``claim_job`` one after another, in a savepoint that is then rolled back, on the same queue state
and in the same transaction (so ``now()`` and every row are the same). Random queue states cover
several tenants, fleet and tenant priorities, delayed jobs, job types asked for by pools, tenant
caps and pauses."""

from __future__ import annotations

import json
import random
import threading
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from schema.named_queries import queries
from tests import factories as f
from tests.integration.queue.conftest import World, enqueue, job, wait_for
from workers.claim import ALONE, JobStore, _Turn

Q = queries("queue")
TYPES = ["noop", "thumbnail", "metadata"]


def combined(conn: psycopg.Connection, done: list[tuple[uuid.UUID, str]],
             claims: list[tuple[str, list[str] | None]]) -> list[dict[str, Any]]:
    return conn.execute(Q["complete_and_claim_jobs"], {
        "lease_seconds": 30, "done_ids": [d[0] for d in done], "done_workers": [d[1] for d in done],
        "outputs": [json.dumps({"n": i}) for i in range(len(done))],
        "claim_workers": [c[0] for c in claims], "claim_types": Jsonb([c[1] for c in claims]), "lock_timeout_ms": None}).fetchall()


def one_by_one(conn: psycopg.Connection, claims: list[tuple[str, list[str] | None]]) -> list[uuid.UUID | None]:
    got = []
    for worker, types in claims:
        row = conn.execute(Q["claim"], {"worker_id": worker, "lease_seconds": 30, "job_types": types}).fetchone()
        got.append(row["id"] if row else None)
    return got


def random_queue(conn: psycopg.Connection, rng: random.Random) -> None:
    tenants = [f.tenant(conn) for _ in range(rng.randint(1, 4))]
    for t in tenants:
        asset = f.asset(conn, t, None)
        for i in range(rng.randint(1, 6)):
            jid = enqueue(conn, asset, "noop", params={"tag": f"{t}:{i}"})
            conn.execute("""UPDATE asset_processing_jobs SET job_type = %s, priority = %s, tenant_priority = %s,
                                   run_after = now() + make_interval(secs => %s) WHERE id = %s""",
                         (rng.choice(TYPES), rng.choice([3, 5, 5, 8]), rng.choice([1, 5, 9]),
                          rng.choice([-30, -20, -10, -1, 60]), jid))
        if rng.random() < 0.3:
            conn.execute("SELECT app_private.set_tenant_job_limit(%s, %s)", (t, rng.randint(1, 2)))
    if rng.random() < 0.25:
        conn.execute("SELECT app_private.pause_jobs(p_job_type => %s)", (rng.choice(TYPES),))
    if rng.random() < 0.2:
        conn.execute("SELECT app_private.pause_jobs(p_tenant_id => %s)", (rng.choice(tenants),))


@pytest.mark.parametrize("seed", range(12))
def test_combined_claims_take_the_jobs_one_by_one_claims_take(conn: psycopg.Connection, seed: int) -> None:
    rng = random.Random(seed)
    random_queue(conn, rng)
    claims = [(f"w{i}", rng.choice([None, None, ["noop"], ["thumbnail", "metadata"]]))
              for i in range(rng.randint(1, 8))]
    with conn.transaction():
        with conn.transaction(force_rollback=True):
            expected = one_by_one(conn, claims)
        rows = combined(conn, [], claims)
        assert [r["kind"] for r in rows] == ["claim"] * len(claims)
        assert [r["ord"] for r in rows] == list(range(1, len(claims) + 1))
        assert [r["id"] for r in rows] == expected
        for r, (worker, _) in zip(rows, claims, strict=True):
            if r["id"] is not None:  # claimed for the worker that asked, with a fencing token
                row = job(conn, r["id"])
                assert (row["status"], row["worker_id"], row["claim_token"]) == ("running", worker, r["claim_token"])


def test_completions_come_first_and_each_answers_for_itself(conn: psycopg.Connection, world: World) -> None:
    """The completions free the capped tenant's slots before the claims run; a completion of a job
    that is no longer the caller's answers false and changes nothing, and the others commit."""
    conn.execute("SELECT app_private.set_tenant_job_limit(%s, 2)", (world.tenant,))
    jobs = [enqueue(conn, world.asset, "noop", params={"tag": str(i)}) for i in range(5)]
    first = one_by_one(conn, [("a", None), ("b", None)])
    assert first == jobs[:2]
    assert one_by_one(conn, [("c", None)]) == [None]  # at its cap of 2
    rows = combined(conn, [(jobs[0], "a"), (jobs[1], "someone else")], [("a", None), ("c", None)])
    assert sorted((r["kind"], r["ord"], r["ours"], r["id"]) for r in rows) == [
        ("claim", 1, None, jobs[2]), ("claim", 2, None, None), ("done", 1, True, None), ("done", 2, False, None)]
    assert job(conn, jobs[0])["status"] == "completed"
    assert job(conn, jobs[0])["output_data"] == {"n": 0}
    assert (job(conn, jobs[1])["status"], job(conn, jobs[1])["worker_id"]) == ("running", "b")


def test_an_empty_claim_is_not_repeated_for_the_same_types(conn: psycopg.Connection, world: World) -> None:
    enqueue(conn, world.asset, "noop")
    conn.execute("SET track_functions = 'all'")
    with conn.transaction():
        rows = combined(conn, [], [("a", ["thumbnail"]), ("b", ["thumbnail"]), ("c", None), ("d", None)])
        calls = conn.execute("SELECT calls FROM pg_stat_xact_user_functions "
                             "WHERE schemaname = 'app_private' AND funcname = 'claim_job'").fetchone()["calls"]
    assert [r["id"] is not None for r in rows] == [False, False, True, False]
    assert calls == 3  # b's claim was skipped; d's was made (c's found a job, so "every type" was not empty)


def test_arrays_of_different_lengths_are_refused(conn: psycopg.Connection, world: World) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="equal lengths"):
        conn.execute("SELECT * FROM app_private.complete_and_claim_jobs(30, %s::uuid[], %s::text[], %s::jsonb[], "
                     "'{}', '[]')", ([uuid.uuid4()], ["a", "b"], ["{}"]))


def test_threads_waiting_while_a_combined_call_is_held_up_go_in_the_next_one(
        db_url: str, conn: psycopg.Connection, world: World) -> None:
    """Four threads complete a job each while another session holds the asset's row lock (the
    roll-up at commit waits for it): the first thread's call is held up, the other three wait in
    the process and are sent together in the next call, every thread gets its own answer and the
    job claimed for it, and each claimed job is leased to the thread that asked."""
    store = JobStore(db_url, lease_seconds=30, combine=True)
    assert store.combiner is not None
    try:
        jobs = [enqueue(conn, world.asset, "noop", params={"tag": str(i)}) for i in range(8)]
        held = [store.claim(f"t{i}") for i in range(4)]
        assert [h.id for h in held if h] == jobs[:4]
        answers: dict[int, tuple[bool, Any]] = {}

        def finish(i: int) -> None:
            job_ = held[i]
            assert job_ is not None
            answers[i] = store.complete(job_, f"t{i}", {"i": i}, None, claim_next=True)

        with psycopg.connect(db_url, autocommit=True) as locker:
            with locker.transaction():
                locker.execute("SELECT 1 FROM assets WHERE id = %s FOR UPDATE", (world.asset,))
                threads = [threading.Thread(target=finish, args=(0,))]
                threads[0].start()
                wait_for(lambda: store.combiner.batches == 1, 10, "the first combined call")
                for i in range(1, 4):
                    threads.append(threading.Thread(target=finish, args=(i,)))
                    threads[-1].start()
                wait_for(lambda: len(store.combiner._waiting) == 3, 10, "three threads waiting")
            for t in threads:
                t.join(10)
        assert (store.combiner.batches, store.combiner.requests) == (2, 4)
        assert sorted(answers) == [0, 1, 2, 3]
        assert all(ours for ours, _ in answers.values())
        claimed = {i: nxt.id for i, (_, nxt) in answers.items()}
        assert claimed[0] == jobs[4] and sorted(map(str, claimed.values())) == sorted(map(str, jobs[4:]))
        for i, jid in claimed.items():
            assert (job(conn, jid)["status"], job(conn, jid)["worker_id"]) == ("running", f"t{i}")
        for i in range(4):
            row = job(conn, jobs[i])
            assert (row["status"], row["output_data"]) == ("completed", {"i": i})
    finally:
        store.close()


def test_a_lost_job_in_a_combined_call_leaves_the_others_completed(
        db_url: str, conn: psycopg.Connection, world: World) -> None:
    store = JobStore(db_url, lease_seconds=30, combine=True)
    try:
        jobs = [enqueue(conn, world.asset, "noop", params={"tag": str(i)}) for i in range(2)]
        a, b = store.claim("a"), store.claim("b")
        assert a is not None and b is not None
        conn.execute("SELECT cancel_asset_job(%s)", (b.id,))
        assert store.complete(b, "b", {}, None, claim_next=True) == (False, None)
        assert store.complete(a, "a", {}, None, claim_next=True) == (True, None)
        assert [job(conn, j)["status"] for j in jobs] == ["completed", "cancelled"]
    finally:
        store.close()


def test_combined_calls_completing_jobs_of_two_assets_in_opposite_orders_do_not_deadlock(
        db_url: str, conn: psycopg.Connection, world: World) -> None:
    """Each completion's roll-up locks its asset at commit. Two calls given the same two assets in
    opposite orders, both held up behind a third session's lock on the first asset, deadlocked
    (PostgreSQL's detector then failed one of them after deadlock_timeout) until the completions
    were made in the order of their assets."""
    lo, hi = sorted([world.asset, f.asset(conn, world.tenant, world.user)])
    jobs = {a: [enqueue(conn, a, "noop", params={"tag": str(i)}) for i in range(2)] for a in (lo, hi)}
    for _ in range(4):
        assert one_by_one(conn, [("w", None)]) != [None]
    orders = [[jobs[lo][0], jobs[hi][0]], [jobs[hi][1], jobs[lo][1]]]
    errors: list[BaseException] = []

    def complete(ids: list[uuid.UUID]) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as c:
                combined(c, [(i, "w") for i in ids], [])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with psycopg.connect(db_url, autocommit=True) as locker:
        with locker.transaction():
            locker.execute("SELECT 1 FROM assets WHERE id = %s FOR UPDATE", (lo,))
            threads = [threading.Thread(target=complete, args=(ids,)) for ids in orders]
            for t in threads:
                t.start()
            # Asked on another connection: within the locker's transaction pg_stat_activity would
            # keep showing what it showed first.
            wait_for(lambda: conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'").fetchone()["n"] == 2, 10, "both calls waiting for a lock")
        for t in threads:
            t.join(20)
    assert errors == []
    assert {job(conn, j)["status"] for js in jobs.values() for j in js} == {"completed"}


def test_a_worker_with_combined_calls_runs_every_job_once(in_process, conn: psycopg.Connection,
                                                         world: World) -> None:
    """Through the actor: CONTENTFORGE_WORKER_COMBINED_CALLS=1, four threads, jobs on three assets;
    every job completes in one attempt, every completion went through the combiner, and the
    assets roll up to ready."""
    assets = [world.asset, *(f.asset(conn, world.tenant, world.user) for _ in range(2))]
    jobs = [enqueue(conn, assets[i % 3], "noop", params={"tag": str(i)}) for i in range(60)]
    w = in_process(threads=4, worker_combined_calls=1)
    combiner = w.runtime.store.combiner
    assert combiner is not None and combiner.max_in_flight == 1
    wait_for(lambda: conn.execute("SELECT count(*) AS n FROM asset_processing_jobs WHERE status = 'completed'")
             .fetchone()["n"] == 60, 30, "60 completed jobs")
    rows = conn.execute("SELECT attempts, worker_id FROM asset_processing_jobs WHERE id = ANY(%s)", (jobs,)).fetchall()
    assert {r["attempts"] for r in rows} == {1}
    assert combiner.requests >= 60  # each completion (and the claims riding on them)
    assert {r["processing_status"] for r in conn.execute(
        "SELECT processing_status::text FROM assets WHERE id = ANY(%s)", (assets,))} == {"ready"}


def test_combined_calls_are_off_by_default(in_process) -> None:
    assert in_process(threads=2, relay=False, consume=False).runtime.store.combiner is None


def test_the_answers_follow_each_completion_whatever_order_the_assets_impose(
        conn: psycopg.Connection, world: World) -> None:
    """Completions are made in asset order, not in the order given: each answer still goes to the
    completion it belongs to (here the second, on the lower asset, is made first and is not ours)."""
    lo, hi = sorted([world.asset, f.asset(conn, world.tenant, world.user)])
    on_hi, on_lo = enqueue(conn, hi, "noop"), enqueue(conn, lo, "noop")
    assert sorted(map(str, one_by_one(conn, [("a", None), ("a", None)]))) == sorted(map(str, [on_hi, on_lo]))
    rows = combined(conn, [(on_hi, "a"), (on_lo, "not a")], [])
    assert [(r["ord"], r["ours"]) for r in rows] == [(2, False), (1, True)]
    assert (job(conn, on_hi)["status"], job(conn, on_lo)["status"]) == ("completed", "running")


def test_a_combined_call_held_up_by_a_lock_is_abandoned_and_each_thread_goes_alone(
        db_url: str, conn: psycopg.Connection, world: World) -> None:
    """Another session holds one job's asset: the combined call gives up after its lock timeout,
    nothing of it commits, and the thread whose asset is free completes alone at once while the
    other waits alone for the lock (as with combining off) and completes when it is released."""
    lo, hi = sorted([world.asset, f.asset(conn, world.tenant, world.user)])
    store = JobStore(db_url, lease_seconds=30, combine=1)
    try:
        on_lo, on_hi = enqueue(conn, lo, "noop"), enqueue(conn, hi, "noop")
        a, b = store.claim("a"), store.claim("b")
        assert a is not None and b is not None
        by_asset = {a.asset_id: (a, "a"), b.asset_id: (b, "b")}
        turns = [store_turn(by_asset[asset]) for asset in (lo, hi)]
        with psycopg.connect(db_url, autocommit=True) as locker:
            with locker.transaction():
                locker.execute("SELECT 1 FROM assets WHERE id = %s FOR UPDATE", (lo,))
                assert store._send_turns(turns) == [ALONE, ALONE]
                assert {job(conn, on_lo)["status"], job(conn, on_hi)["status"]} == {"running"}
                answers: dict[str, Any] = {}
                threads = [threading.Thread(target=lambda j=j, w=w: answers.__setitem__(
                    w, store.complete(j, w, {}, None, claim_next=False))) for j, w in by_asset.values()]
                for t in threads:
                    t.start()
                free = by_asset[hi][1]
                wait_for(lambda: free in answers, 10, "the thread whose asset is free")
                assert job(conn, on_hi)["status"] == "completed"
                wait_for(lambda: conn.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE '%%app_private.complete_job(%%'").fetchone()["n"] == 1,
                    10, "the other thread waiting alone, in the one-thread statement")
            for t in threads:
                t.join(10)
        assert answers == {"a": (True, None), "b": (True, None)}
        assert job(conn, on_lo)["status"] == "completed"
    finally:
        store.close()


def store_turn(held: tuple[Any, str]) -> _Turn:
    j, worker = held
    return _Turn(j.id, worker, "{}", False)


def test_an_output_jsonb_refuses_fails_only_its_own_job(db_url: str, conn: psycopg.Connection,
                                                        world: World) -> None:
    store = JobStore(db_url, lease_seconds=30, combine=1)
    try:
        jobs = [enqueue(conn, world.asset, "noop", params={"tag": str(i)}) for i in range(2)]
        good, bad = store.claim("g"), store.claim("b")
        assert good is not None and bad is not None
        turns = [_Turn(good.id, "g", "{}", False), _Turn(bad.id, "b", json.dumps({"x": float("nan")}), False)]
        assert store._send_turns(turns) == [ALONE, ALONE]  # jsonb refuses NaN: the call is abandoned
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            store.complete(bad, "b", {"x": float("nan")}, None)  # alone, it fails only itself
        assert store.complete(good, "g", {"ok": 1}, None) == (True, None)
        assert [job(conn, j)["status"] for j in jobs] == ["completed", "running"]
    finally:
        store.close()
