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
from workers.claim import JobStore

Q = queries("queue")
TYPES = ["noop", "thumbnail", "metadata"]


def combined(conn: psycopg.Connection, done: list[tuple[uuid.UUID, str]],
             claims: list[tuple[str, list[str] | None]]) -> list[dict[str, Any]]:
    return conn.execute(Q["complete_and_claim_jobs"], {
        "lease_seconds": 30, "done_ids": [d[0] for d in done], "done_workers": [d[1] for d in done],
        "outputs": [json.dumps({"n": i}) for i in range(len(done))],
        "claim_workers": [c[0] for c in claims], "claim_types": Jsonb([c[1] for c in claims])}).fetchall()


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
    assert [(r["kind"], r["ord"], r["ours"], r["id"]) for r in rows] == [
        ("done", 1, True, None), ("done", 2, False, None), ("claim", 1, None, jobs[2]), ("claim", 2, None, None)]
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
