"""PostgreSQL's work per job on the worker's hot path, before and after a migration, interleaved.

    .venv/bin/python bench/bench_job_path.py --before 21 --jobs 3000 --repeat 3 --tenants 1,20

For each repetition and tenant count, two databases are built on the PostgreSQL of
TEST_DATABASE_URL: one migrated up to --before migrations (the baseline), one with every migration.
Each gets the same data (1,000 assets spread over the tenants; 5,000 no-op jobs queued, ANALYZE, the
jobs deleted, as bench_queue.py's "analysed" state; --state fresh skips that), then --jobs no-op jobs queued in one statement
are claimed and completed on one connection exactly as a busy worker does (``claim``, then
``complete_and_claim`` from schema/queries/queue.sql until nothing is left; with --combined K the
after side instead runs as K threads whose calls are combined: ``complete_and_claim_jobs``, K
completions and K claims per call). Reported per job:
the backend's CPU time (/proc), wall time, and per SQL function the time from
``pg_stat_user_functions`` (``track_functions = all``; total time includes nested functions).
CF_BENCH_DB_PREFIX (default cf_bench_) names the databases. The two databases alternate (their order flips each repetition); medians over repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from contentforge.api import set_test_job_types
from schema.named_queries import queries
from schema.runner import load_migrations, migrate

ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
#: Prefix of the databases this run creates (two runs at once on one server need different ones).
DB_PREFIX = os.environ.get("CF_BENCH_DB_PREFIX", "cf_bench_")
_TICK = os.sysconf("SC_CLK_TCK")


def db_url(name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def build(name: str, upto: int | None, tenants: int, state: str) -> str:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = db_url(name)
    migrations = [m for m in load_migrations() if upto is None or int(m.version) <= upto]
    migrate(url, migrations=migrations)
    set_test_job_types(url, True)
    with psycopg.connect(url, autocommit=True) as c:
        for i in range(tenants):
            t = c.execute("INSERT INTO tenants (name, slug) VALUES (%s, %s) RETURNING id", (f"t{i}", f"t{i}")).fetchone()[0]
            c.execute("""INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path)
                         SELECT %(t)s, 'f.bin', 'other', 'application/octet-stream', 1, %(t)s::text || '/k/' || g
                         FROM generate_series(1, %(n)s) g""", {"t": t, "n": 1000 // tenants})
        if state == "analysed":
            enqueue(c, 5000, 0)
            c.execute("ANALYZE")
            c.execute("DELETE FROM asset_processing_jobs")
    return url


def enqueue(c: psycopg.Connection[Any], n: int, seq: int) -> None:
    c.execute("""
        SELECT enqueue_asset_job(asset_id => a.id, job_type => 'noop', params => jsonb_build_object('tag', %s || ':' || g))
        FROM generate_series(1, %s) g
        JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM assets) a ON a.i = g %% 1000""", (str(seq), n))


def run(url: str, jobs: int, combined: int = 0) -> dict[str, Any]:
    q = queries("queue")
    with psycopg.connect(url, autocommit=True) as c:
        enqueue(c, jobs, 1)
        c.execute("SET track_functions = 'all'")
        c.execute("SELECT pg_stat_reset()")
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        cpu0, t0 = backend_cpu(pid), time.perf_counter()
        if combined:
            done = run_combined(c, q, combined)
        else:
            row = c.execute(q["claim"], {"worker_id": "w", "lease_seconds": 60, "job_types": None}).fetchone()
            done = 0
            while row is not None and row[0] is not None:
                out = c.execute(q["complete_and_claim"], {
                    "job_id": row[0], "worker_id": "w", "output": Jsonb({"outputs": []}), "lease_seconds": 60,
                    "claim_next": True, "job_types": None}).fetchone()
                row = out[1:] if out else None
                done += 1
        wall, cpu = time.perf_counter() - t0, backend_cpu(pid) - cpu0
        c.execute("SELECT pg_stat_force_next_flush()")
        functions = {f"{r[0]}.{r[1]}": r[2] / done for r in c.execute(
            "SELECT schemaname, funcname, total_time FROM pg_stat_user_functions")}
    assert done == jobs, f"{done} of {jobs} jobs ran"
    return {"cpu_ms": cpu * 1000 / done, "wall_ms": wall * 1000 / done, "functions": functions,
            "load": os.getloadavg()[0]}


def run_combined(c: psycopg.Connection[Any], q: dict[str, str], k: int) -> int:
    """As k busy threads of one process with combined calls (migration 0025): each call completes
    the k jobs of the last one and claims k more, until no job is left; returns the jobs done."""
    workers = [f"w{i}" for i in range(k)]
    held: list[tuple[Any, str]] = []
    done = 0
    while True:
        rows = c.execute(q["complete_and_claim_jobs"], {
            "lease_seconds": 60, "done_ids": [h[0] for h in held], "done_workers": [h[1] for h in held],
            "outputs": [json.dumps({"outputs": []})] * len(held), "claim_workers": workers,
            "claim_types": Jsonb([None] * k), "lock_timeout_ms": 200}).fetchall()
        done += len(held)
        held = [(r[3], workers[r[1] - 1]) for r in rows if r[0] == "claim" and r[3] is not None]
        if not held:
            return done


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=int, required=True,
                    help="the baseline database has the migrations up to this version (e.g. 21 for 0021)")
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tenants", default="1,20")
    ap.add_argument("--combined", type=int, default=0,
                    help="the after side runs as this many threads with combined calls (0025): k jobs per call")
    ap.add_argument("--state", choices=["analysed", "fresh"], default="analysed",
                    help="fresh: the jobs table never analysed and never filled before")
    args = ap.parse_args()
    results: dict[str, Any] = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "args": vars(args), "runs": {}}
    for tenants in [int(t) for t in args.tenants.split(",")]:
        for rep in range(args.repeat):
            sides = [("before", args.before), ("after", None)]
            for side, upto in sides if rep % 2 == 0 else sides[::-1]:
                url = build(f"{DB_PREFIX}path_{side}", upto, tenants, args.state)
                r = run(url, args.jobs, args.combined if side == "after" else 0)
                results["runs"].setdefault(f"{tenants}", {}).setdefault(side, []).append(r)
                print(json.dumps({"tenants": tenants, "rep": rep, "side": side,
                                  **{k: v for k, v in r.items() if k != "functions"}}), file=sys.stderr)
    for name in (f"{DB_PREFIX}path_before", f"{DB_PREFIX}path_after"):
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    print(json.dumps(results, indent=2))
    print("| tenants | side | backend CPU ms/job | wall ms/job | claim_job | claim_job_walk | complete_job | roll-up | job_events | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for tenants, sides in results["runs"].items():
        for side, runs in sides.items():
            def fn(name: str, runs: list[dict[str, Any]] = runs) -> str:
                vals = [r["functions"].get(name, 0.0) for r in runs]
                return f"{statistics.median(vals):.3f}"
            print(f"| {tenants} | {side} | {statistics.median(r['cpu_ms'] for r in runs):.3f} "
                  f"({', '.join(format(r['cpu_ms'], '.2f') for r in runs)}) | {statistics.median(r['wall_ms'] for r in runs):.3f} "
                  f"| {fn('app_private.claim_job')} | {fn('app_private.claim_job_walk')} | {fn('app_private.complete_job')} "
                  f"| {fn('app_private.jobs_roll_up')} | {fn('app_private.job_events')} "
                  f"| {', '.join(format(r['load'], '.1f') for r in runs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
