"""Job queue benchmark: no-op jobs from enqueue to completed, side by side with Procrastinate.

    .venv/bin/python bench/bench_queue.py --jobs 5000 --threads 4 \
        --procrastinate-python /tmp/bench-venv/bin/python --bloat-jobs 100000

Measures, on the PostgreSQL of TEST_DATABASE_URL (default postgres@127.0.0.1) and the Redis of
TEST_REDIS_URL, each in a fresh database:
- throughput: JOBS no-op jobs queued in one statement, time from commit until none is pending or
  running, with 1, 2 and 4 `contentforge worker` processes (medians of --repeat runs);
- claim latency with idle workers: jobs queued one at a time, started_at - created_at;
- the same for Procrastinate (async no-op task, its own worker processes, same PostgreSQL);
- table size and dead tuples after --bloat-jobs jobs with purging on (retention 0 days), optionally
  capped in time (--bloat-max-seconds) and with a VACUUM after every N batches (--bloat-vacuum-every,
  for servers that run with autovacuum off).
Besides jobs/s, each throughput run reports the CPU time per job of the worker processes and of their
PostgreSQL backends (from /proc): on a machine shared with other work it is steadier than jobs/s.
Procrastinate is timed like ours: workers idle before the jobs are queued in one statement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
HERE = Path(__file__).resolve().parent


def db_url(name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def fresh_db(name: str) -> str:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return db_url(name)


def drop_db(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Ours:
    def __init__(self, name: str, assets: int = 1000) -> None:
        from schema import migrate

        self.name = name
        self.url = fresh_db(name)
        migrate(self.url)
        from contentforge.api import set_test_job_types

        set_test_job_types(self.url, True)  # noop is test-only
        self.conn = psycopg.connect(self.url, autocommit=True)
        tenant = self.conn.execute("INSERT INTO tenants (name, slug) VALUES ('bench', 'bench') RETURNING id").fetchone()[0]
        self.conn.execute("""INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path)
                             SELECT %(t)s, 'f.bin', 'other', 'application/octet-stream', 1, %(t)s::text || '/k/' || g
                             FROM generate_series(1, %(n)s) g""", {"t": tenant, "n": assets})
        self.assets = assets
        self.proc: subprocess.Popen[bytes] | None = None
        self.seq = 0

    def start(self, processes: int, threads: int, *, retention_days: int = 7, sweep: float = 1.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTFORGE_")}
        env.update({"DATABASE_URL": self.url, "REDIS_URL": REDIS, "STORAGE_URL": "file:///tmp/cf-bench-storage",
                    "CONTENTFORGE_QUEUE_NAME": f"bench_{self.name}", "CONTENTFORGE_METRICS_PORT": "0",
                    "CONTENTFORGE_LOG_LEVEL": "WARNING", "CONTENTFORGE_LOG_FORMAT": "json",
                    "CONTENTFORGE_SWEEP_INTERVAL_SECONDS": str(sweep),
                    "CONTENTFORGE_JOB_RETENTION_DAYS": str(retention_days)})
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "worker", "--processes",
                                      str(processes), "--threads", str(threads)], env=env, start_new_session=True,
                                     stderr=subprocess.DEVNULL)
        time.sleep(2.0)  # processes up and polling

    def stop(self) -> None:
        if self.proc:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
            self.proc = None

    def enqueue_batch(self, jobs: int) -> None:
        self.seq += 1
        self.conn.execute("""
            SELECT enqueue_asset_job(asset_id => a.id, job_type => 'noop', params => jsonb_build_object('tag', %s || ':' || g))
            FROM generate_series(1, %s) g
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM assets) a ON a.i = g %% %s""",
                          (self.seq, jobs, self.assets))

    def active(self) -> int:
        return self.conn.execute("SELECT count(*) FROM asset_processing_jobs WHERE status IN ('pending', 'running')").fetchone()[0]

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far by (our worker processes, their PostgreSQL backends): unlike jobs/s,
        CPU per job does not depend on what else runs on the machine."""
        assert self.proc
        workers = _tree_cpu(self.proc.pid)
        pids = [r[0] for r in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        return workers, sum(_cpu(p) for p in pids)

    def throughput(self, jobs: int) -> dict:
        self.enqueue_batch(jobs)
        cpu_before = self.cpu_seconds()
        started = time.perf_counter()
        while self.active():
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu_after = self.cpu_seconds()
        failed = self.conn.execute("SELECT count(*) FROM asset_processing_jobs WHERE status <> 'completed'").fetchone()[0]
        assert failed == 0, f"{failed} jobs did not complete"
        return {"jobs_per_s": jobs / elapsed,
                "worker_cpu_ms_per_job": (cpu_after[0] - cpu_before[0]) * 1000 / jobs,
                "postgres_cpu_ms_per_job": (cpu_after[1] - cpu_before[1]) * 1000 / jobs}

    def latency(self, jobs: int, gap: float) -> dict:
        asset = self.conn.execute("SELECT id FROM assets LIMIT 1").fetchone()[0]
        ids = []
        for _i in range(jobs):
            ids.append(self.conn.execute("SELECT enqueue_asset_job(%s, 'noop', jsonb_build_object('tag', %s::text))",
                                         (asset, str(uuid.uuid4()))).fetchone()[0])
            time.sleep(gap)
        while self.active():
            time.sleep(0.05)
        ms = sorted(r[0] for r in self.conn.execute(
            "SELECT extract(epoch FROM started_at - created_at) * 1000 FROM asset_processing_jobs WHERE id = ANY(%s)",
            (ids,)).fetchall())
        return {"samples": len(ms), "p50_ms": float(statistics.median(ms)), "p99_ms": float(ms[int(len(ms) * 0.99) - 1])}

    def table_stats(self) -> dict:
        self.conn.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.5)
        row = self.conn.execute("""
            SELECT pg_total_relation_size('asset_processing_jobs'), pg_relation_size('asset_processing_jobs'),
                   s.n_live_tup, s.n_dead_tup, s.autovacuum_count
            FROM pg_stat_user_tables s WHERE s.relname = 'asset_processing_jobs'""").fetchone()
        assets = self.conn.execute("""
            SELECT pg_total_relation_size('assets'), s.n_dead_tup FROM pg_stat_user_tables s
            WHERE s.relname = 'assets'""").fetchone()
        return {"total_bytes": row[0], "heap_bytes": row[1], "live_tuples": row[2], "dead_tuples": row[3],
                "autovacuums": row[4], "assets_total_bytes": assets[0], "assets_dead_tuples": assets[1]}

    def close(self) -> None:
        self.stop()
        self.conn.close()
        drop_db(self.name)


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _tree_cpu(pid: int) -> float:
    total = _cpu(pid)
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _tree_cpu(int(child))
    except OSError:
        pass
    return total


def procrastinate(python: str, *args: str) -> dict:
    name = "cf_bench_procrastinate"
    url = fresh_db(name)
    try:
        out = subprocess.run([python, str(HERE / "procrastinate_side.py"), url, *args], check=True,
                             capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        drop_db(name)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--processes", default="1,2,4")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency-jobs", type=int, default=200)
    ap.add_argument("--procrastinate-python")
    ap.add_argument("--bloat-jobs", type=int, default=0,
                    help="then run this many jobs with purging on and report the table's size and dead tuples")
    ap.add_argument("--bloat-batch", type=int, default=10000, help="jobs queued per statement in the purge run")
    ap.add_argument("--bloat-vacuum-every", type=int, default=0,
                    help="VACUUM the job and asset tables after every N purge-run batches (stands in for "
                         "autovacuum on a server that has it off); 0: never")
    ap.add_argument("--bloat-max-seconds", type=float, default=0,
                    help="stop queuing purge-run batches after this long (0: no limit); the jobs run are reported")
    args = ap.parse_args()
    results: dict = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
                     "jobs": args.jobs, "threads": args.threads, "ours": {}, "procrastinate": {}}
    for p in [int(x) for x in args.processes.split(",") if x.strip()]:
        ours = Ours(f"cf_bench_ours_{p}")
        try:
            ours.start(p, args.threads)
            measured = [ours.throughput(args.jobs) for _ in range(args.repeat)]
            runs = [m["jobs_per_s"] for m in measured]
            results["ours"][p] = {
                "jobs_per_s": statistics.median(runs), "runs": runs,
                "worker_cpu_ms_per_job": statistics.median(m["worker_cpu_ms_per_job"] for m in measured),
                "postgres_cpu_ms_per_job": statistics.median(m["postgres_cpu_ms_per_job"] for m in measured),
            }
            if p == 1:
                results["ours_latency"] = ours.latency(args.latency_jobs, 0.02)
        finally:
            ours.close()
        if args.procrastinate_python:
            runs = [procrastinate(args.procrastinate_python, "throughput", str(args.jobs), str(p), str(args.threads))
                    ["jobs_per_s"] for _ in range(args.repeat)]
            results["procrastinate"][p] = {"jobs_per_s": statistics.median(runs), "runs": runs}
        print(json.dumps({p: (results["ours"][p], results["procrastinate"].get(p))}), file=sys.stderr)
    if args.procrastinate_python:
        results["procrastinate_latency"] = procrastinate(args.procrastinate_python, "latency",
                                                         str(args.latency_jobs), "0.02")
    if args.bloat_jobs:
        ours = Ours("cf_bench_bloat")
        try:
            ours.start(2, args.threads, retention_days=0, sweep=1.0)
            started = time.perf_counter()
            done = 0
            peak: dict = {}
            while done < args.bloat_jobs and not (
                    args.bloat_max_seconds and time.perf_counter() - started > args.bloat_max_seconds):
                batch = min(args.bloat_batch, args.bloat_jobs - done)
                ours.enqueue_batch(batch)
                while ours.active():
                    time.sleep(0.05)
                done += batch
                if args.bloat_vacuum_every and (done // args.bloat_batch) % args.bloat_vacuum_every == 0:
                    ours.conn.execute("VACUUM asset_processing_jobs")
                    ours.conn.execute("VACUUM assets")
                if done % (args.bloat_batch * 10) == 0 or done >= args.bloat_jobs:
                    stats = ours.table_stats()
                    peak = {k: max(v, peak.get(k, 0)) for k, v in stats.items()}
                    print(json.dumps({"done": done, "seconds": round(time.perf_counter() - started, 1), **stats}),
                          file=sys.stderr)
            time.sleep(3)  # one more sweep purges the last batch
            results["bloat"] = {"jobs": done, "seconds": time.perf_counter() - started, **ours.table_stats(),
                                "peak_sampled": peak, "vacuum_every_batches": args.bloat_vacuum_every,
                                "server_autovacuum": ours.conn.execute("SHOW autovacuum").fetchone()[0]}
        finally:
            ours.close()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
