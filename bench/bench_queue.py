"""Job queue benchmark: contentforge, graphile-worker and Procrastinate side by side, interleaved.

    .venv/bin/python bench/bench_queue.py --procrastinate-python /tmp/venv/bin/python --repeat 3

For each repetition, table state (fresh, analysed) and configuration (processes x threads, e.g. 1x4
and 2x4), the three systems run one after another (their order rotates with each repetition), each
in its own new database on the PostgreSQL of TEST_DATABASE_URL (default postgres@127.0.0.1):

- fresh: the schema, never analysed (autovacuum may be off on the server, as on ours);
- analysed: --jobs jobs queued, ANALYZE, the jobs deleted (as a queue that has run for a while).

Each run starts the workers, runs a warm-up of --warmup jobs, waits until they are idle, then:
- idle CPU: CPU used over --idle-seconds by the worker processes, their PostgreSQL backends and (ours)
  the Redis server, per second and per worker process;
- throughput: --jobs no-op jobs queued in one statement, timed from its commit until none is left;
  CPU per job of the workers, the PostgreSQL backends and Redis (from /proc).
Latency (separate runs, 1 process x threads, idle workers): --latency-jobs jobs queued one at a time
--latency-gap seconds apart; the time from a job's created_at to the start of its run (ours:
started_at, set by the claim; Procrastinate: its "started" event; graphile-worker: measured in its
task handler, so it also counts the hand-over to JavaScript); also from the moment the enqueue's
commit returned to the client to the start (the wake-up path alone: on this machine a commit's WAL
flush alone takes milliseconds, and created_at is set before it). Machine load (1-minute average) at
each run's start and end. Medians over repetitions.

graphile-worker (npm) is installed by this script into a temporary folder, never into the project;
Procrastinate runs from its own virtualenv (--procrastinate-python). Ours uses its own Redis server
(started here on --redis-port with no persistence) so that Redis's CPU can be measured.

--tenants N spreads contentforge's jobs over N tenants (default 1), so that its claim chooses between them.
--ours-variant NAME:VAR=VALUE also runs this tree's contentforge with those settings, as contentforge-NAME.
CF_BENCH_DB_PREFIX (default cf_bench_) names the databases, so that two runs can share a server.
--bloat-jobs N (with --systems ours) instead runs N jobs with purging on and reports the table's size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_TICK = os.sysconf("SC_CLK_TCK")
#: Prefix of the databases this run creates (two runs at once on one server need different ones).
DB_PREFIX = os.environ.get("CF_BENCH_DB_PREFIX", "cf_bench_")


# --- databases and CPU -------------------------------------------------------------------------
def db_url(name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def db_uri(url: str) -> str:
    """A conninfo as a postgresql:// URI (node-postgres reads only those)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    auth = info.get("user", "postgres") + (f":{info['password']}" if info.get("password") else "")
    return f"postgresql://{auth}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}"


def create_db(name: str, template: str | None = None) -> str:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        else:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return db_url(name)


def drop_db(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def cpu(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu(pid: int) -> float:
    total = cpu(pid)
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += tree_cpu(int(child))
    except OSError:
        pass
    return total


def load() -> float:
    return os.getloadavg()[0]


class RedisServer:
    """A Redis server of our own, without persistence, so that its CPU is ours alone."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                                      "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)

    def cpu(self) -> float:
        return cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- the systems -------------------------------------------------------------------------------
class System:
    """One queue under test: a template database, workers, and the SQL to queue and count jobs."""

    name = ""
    template = ""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.conn: psycopg.Connection[Any] | None = None
        self.db = ""

    # overridden
    def make_template(self) -> None: ...
    def spawn(self, url: str, processes: int, threads: int, *, latency: bool) -> list[subprocess.Popen[bytes]]: ...
    def enqueue_batch(self, n: int) -> None: ...
    def enqueue_one(self) -> Any: ...
    def active(self) -> int: ...
    def clear_jobs(self) -> None: ...
    def latencies(self, ids: list[Any]) -> dict[Any, tuple[float, float]]:
        """Per job id: (created, started), seconds since the epoch (the same machine's clock)."""
        ...
    def redis_cpu(self) -> float:
        return 0.0

    # common
    def open(self, run: str, state: str) -> None:
        self.db = f"{DB_PREFIX}q_{self.name.replace('-', '_')}_{run}"
        url = create_db(self.db, self.template)
        self.conn = psycopg.connect(url, autocommit=True)
        if state == "analysed":
            self.enqueue_batch(ANALYSE_JOBS)
            self.conn.execute("ANALYZE")
            self.clear_jobs()
        self.url = url

    def start(self, processes: int, threads: int, *, latency: bool = False) -> None:
        self.processes = processes
        self.procs = self.spawn(self.url, processes, threads, latency=latency)

    def wait_idle(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.active():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: jobs left after {timeout} s")
            time.sleep(0.05)

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds so far of (the worker processes, their PostgreSQL backends, Redis)."""
        assert self.conn
        workers = sum(tree_cpu(p.pid) for p in self.procs)
        pids = [r[0] for r in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        return workers, sum(cpu(p) for p in pids), self.redis_cpu()

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []
        if self.conn:
            self.conn.close()
            self.conn = None
        drop_db(self.db)


ANALYSE_JOBS = 5000


class Ours(System):
    name = "contentforge"
    template = DB_PREFIX + "tpl_contentforge"
    assets = 1000

    def __init__(self, redis: RedisServer, tree: Path = ROOT, name: str = "contentforge", tenants: int = 1,
                 env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.extra_env = dict(env or {})  # settings of this variant (e.g. CONTENTFORGE_WORKER_COMBINED_CALLS)
        self.tenants = tenants
        self.assets = self.assets // tenants * tenants  # the same number of assets per tenant
        self.redis = redis
        self.seq = 0
        self.tree = tree  # a source tree (the baseline: a copy of an earlier commit)
        self.name = name
        self.template = f"{DB_PREFIX}tpl_{name.replace('-', '_')}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTFORGE_")}
        env["PYTHONPATH"] = str(self.tree)
        env.update(self.extra_env)
        return env

    def make_template(self) -> None:
        url = create_db(self.template)
        # The tree's own migrations (and switch for test-only job types), in a subprocess.
        subprocess.run([sys.executable, "-c", "import sys; from schema import migrate; from contentforge.api import "
                        "set_test_job_types; migrate(sys.argv[1]); set_test_job_types(sys.argv[1], True)", url],
                       env=self._env(), cwd=self.tree, check=True)
        with psycopg.connect(url, autocommit=True) as c:
            # The assets (and so the jobs) spread evenly over --tenants tenants.
            for i in range(self.tenants):
                tenant = c.execute("INSERT INTO tenants (name, slug) VALUES (%s, %s) RETURNING id",
                                   (f"bench {i}", f"bench-{i}")).fetchone()[0]
                c.execute("""INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path)
                             SELECT %(t)s, 'f.bin', 'other', 'application/octet-stream', 1, %(t)s::text || '/k/' || g
                             FROM generate_series(1, %(n)s) g""", {"t": tenant, "n": self.assets // self.tenants})

    def spawn(self, url: str, processes: int, threads: int, *, latency: bool) -> list[subprocess.Popen[bytes]]:
        env = self._env()
        env.update({"DATABASE_URL": url, "REDIS_URL": self.redis.url, "STORAGE_URL": "file:///tmp/cf-bench-storage",
                    "CONTENTFORGE_QUEUE_NAME": self.db, "CONTENTFORGE_METRICS_PORT": "0",
                    "CONTENTFORGE_LOG_LEVEL": "WARNING", "CONTENTFORGE_LOG_FORMAT": "json"})
        proc = subprocess.Popen([sys.executable, "-m", "cli", "worker", "--processes", str(processes),
                                 "--threads", str(threads)], env=env, start_new_session=True, cwd=self.tree,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        assert self.conn
        while not self.conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND application_name = 'contentforge-relay'").fetchone()[0]:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("contentforge worker did not start")
            time.sleep(0.1)
        time.sleep(1.0)  # worker processes started and subscribed
        return [proc]

    def enqueue_batch(self, n: int) -> None:
        assert self.conn
        self.seq += 1
        self.conn.execute("""
            SELECT enqueue_asset_job(asset_id => a.id, job_type => 'noop', params => jsonb_build_object('tag', %s || ':' || g))
            FROM generate_series(1, %s) g
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM assets) a ON a.i = g %% %s""",
                          (self.seq, n, self.assets))

    def enqueue_one(self) -> Any:
        assert self.conn
        self.seq += 1
        return self.conn.execute("SELECT enqueue_asset_job(a.id, 'noop', jsonb_build_object('tag', %s::text)) "
                                 "FROM assets a ORDER BY a.id LIMIT 1", (str(self.seq),)).fetchone()[0]

    def active(self) -> int:
        assert self.conn
        return self.conn.execute("SELECT count(*) FROM asset_processing_jobs "
                                 "WHERE status IN ('pending', 'running')").fetchone()[0]

    def clear_jobs(self) -> None:
        assert self.conn
        self.conn.execute("DELETE FROM asset_processing_jobs")

    def latencies(self, ids: list[Any]) -> dict[Any, tuple[float, float]]:
        assert self.conn
        return {r[0]: (float(r[1]), float(r[2])) for r in self.conn.execute(
            "SELECT id, extract(epoch FROM created_at), extract(epoch FROM started_at) FROM asset_processing_jobs "
            "WHERE id = ANY(%s)", (ids,))}

    def redis_cpu(self) -> float:
        return self.redis.cpu()


class Graphile(System):
    name = "graphile"
    template = DB_PREFIX + "tpl_graphile"

    def __init__(self, node_modules: Path) -> None:
        super().__init__()
        self.env = {**os.environ, "NODE_PATH": str(node_modules)}
        self.lat: dict[str, float] = {}

    def make_template(self) -> None:
        url = create_db(self.template)
        subprocess.run(["node", str(HERE / "graphile_side.js"), "migrate", db_uri(url)], env=self.env, check=True)

    def spawn(self, url: str, processes: int, threads: int, *, latency: bool) -> list[subprocess.Popen[bytes]]:
        procs = [subprocess.Popen(["node", str(HERE / "graphile_side.js"), "work", db_uri(url), str(threads)], env=self.env,
                                  stdout=subprocess.PIPE, start_new_session=True) for _ in range(processes)]
        for p in procs:
            assert p.stdout
            if p.stdout.readline().strip() != b"ready":
                raise RuntimeError("graphile-worker did not start")
        return procs

    def enqueue_batch(self, n: int) -> None:
        assert self.conn
        self.conn.execute("SELECT graphile_worker.add_job('noop', json_build_object('n', g)) FROM generate_series(1, %s) g",
                          (n,))

    def enqueue_one(self) -> Any:
        assert self.conn
        return str(self.conn.execute("SELECT (graphile_worker.add_job('noop', json_build_object('lat', true))).id")
                   .fetchone()[0])

    def active(self) -> int:
        assert self.conn
        return self.conn.execute("SELECT count(*) FROM graphile_worker._private_jobs").fetchone()[0]

    def clear_jobs(self) -> None:
        assert self.conn
        self.conn.execute("DELETE FROM graphile_worker._private_jobs")

    def latencies(self, ids: list[Any]) -> dict[Any, tuple[float, float]]:
        wanted = set(ids)
        got: dict[Any, tuple[float, float]] = {}
        for p in self.procs:  # the handler's lines; the workers are stopped to read them to the end
            os.killpg(p.pid, signal.SIGTERM)
            assert p.stdout
            for line in p.stdout.read().decode().splitlines():
                if line.startswith("{"):
                    row = json.loads(line)
                    if row["id"] in wanted:
                        got[row["id"]] = (row["created"] / 1000, row["at"] / 1000)
        return got


class Procrastinate(System):
    name = "procrastinate"
    template = DB_PREFIX + "tpl_procrastinate"

    def __init__(self, python: str) -> None:
        super().__init__()
        self.python = python

    def make_template(self) -> None:
        url = create_db(self.template)
        subprocess.run([self.python, str(HERE / "procrastinate_side.py"), "schema", url], check=True)

    def spawn(self, url: str, processes: int, threads: int, *, latency: bool) -> list[subprocess.Popen[bytes]]:
        proc = subprocess.Popen([self.python, str(HERE / "procrastinate_side.py"), "work", url, str(processes),
                                 str(threads), "never" if latency else "successful"],
                                stdout=subprocess.PIPE, start_new_session=True)
        assert proc.stdout
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("procrastinate did not start")
        assert self.conn
        deadline = time.monotonic() + 30
        while self.conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0] < processes:
            if time.monotonic() > deadline:
                raise RuntimeError("procrastinate workers did not register")
            time.sleep(0.1)
        return [proc]

    def _defer(self, n: int, args: str) -> Any:
        assert self.conn
        return self.conn.execute(
            "SELECT procrastinate_defer_jobs_v1(array(SELECT ROW('bench', 'noop', 0, NULL, NULL, " + args +
            ", NULL)::procrastinate_job_to_defer_v1 FROM generate_series(1, %s) g))", (n,)).fetchone()[0]

    def enqueue_batch(self, n: int) -> None:
        self._defer(n, "jsonb_build_object('n', g)")

    def enqueue_one(self) -> Any:
        return self._defer(1, "'{}'::jsonb")[0]

    def active(self) -> int:
        assert self.conn
        return self.conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')").fetchone()[0]

    def clear_jobs(self) -> None:
        assert self.conn
        self.conn.execute("DELETE FROM procrastinate_jobs")

    def latencies(self, ids: list[Any]) -> dict[Any, tuple[float, float]]:
        assert self.conn
        return {r[0]: (float(r[1]), float(r[2])) for r in self.conn.execute("""
            SELECT d.job_id, extract(epoch FROM d.at), extract(epoch FROM s.at) FROM procrastinate_events d
            JOIN procrastinate_events s ON s.job_id = d.job_id AND s.type = 'started'
            WHERE d.type = 'deferred' AND d.job_id = ANY(%s)""", (ids,))}


def install_graphile(version: str, folder: Path) -> str:
    """npm install graphile-worker into ``folder`` (a temporary folder); returns its version."""
    subprocess.run(["npm", "init", "-y"], cwd=folder, check=True, capture_output=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", f"graphile-worker@{version}"],
                   cwd=folder, check=True)
    return json.loads((folder / "node_modules" / "graphile-worker" / "package.json").read_text())["version"]


# --- the measurements --------------------------------------------------------------------------
def throughput_run(system: System, run: str, state: str, processes: int, threads: int, args: argparse.Namespace) -> dict:
    load_start = load()
    system.open(run, state)
    try:
        system.start(processes, threads)
        system.enqueue_batch(args.warmup)
        system.wait_idle()
        time.sleep(1.0)
        before = system.cpu()
        t0 = time.perf_counter()
        time.sleep(args.idle_seconds)
        after = system.cpu()
        idle = [(a - b) * 1000 / (time.perf_counter() - t0) for a, b in zip(after, before, strict=True)]
        system.enqueue_batch(args.jobs)
        before = system.cpu()
        t0 = time.perf_counter()
        system.wait_idle()
        elapsed = time.perf_counter() - t0
        after = system.cpu()
        per_job = [(a - b) * 1000 / args.jobs for a, b in zip(after, before, strict=True)]
    finally:
        system.close()
    return {"jobs_per_s": args.jobs / elapsed, "cpu_ms_per_job": sum(per_job), "worker_ms_per_job": per_job[0],
            "postgres_ms_per_job": per_job[1], "redis_ms_per_job": per_job[2],
            "idle_ms_per_s": sum(idle), "idle_ms_per_s_per_process": sum(idle) / processes,
            "idle_parts_ms_per_s": idle, "load": [load_start, load()]}


def latency_run(system: System, run: str, state: str, threads: int, args: argparse.Namespace) -> dict:
    load_start = load()
    system.open(run, state)
    try:
        system.start(1, threads, latency=True)
        system.enqueue_batch(args.warmup)
        system.wait_idle()
        time.sleep(1.0)
        committed: dict[Any, float] = {}
        for _ in range(args.latency_jobs):
            job_id = system.enqueue_one()
            committed[job_id] = time.time()  # the enqueue's commit has returned
            time.sleep(args.latency_gap)
        system.wait_idle()
        time.sleep(0.5)
        times = system.latencies(list(committed))
    finally:
        system.close()
    assert len(times) == len(committed), f"{system.name}: {len(times)} latencies for {len(committed)} jobs"
    ms = sorted((started - created) * 1000 for created, started in times.values())
    after_commit = sorted((started - committed[i]) * 1000 for i, (_, started) in times.items())
    return {"p50_ms": statistics.median(ms), "p99_ms": _p99(ms), "commit_p50_ms": statistics.median(after_commit),
            "commit_p99_ms": _p99(after_commit), "load": [load_start, load()]}


def _p99(values: list[float]) -> float:
    return values[max(int(len(values) * 0.99) - 1, 0)]


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _each(runs: list[dict], key: str, fmt: str) -> str:
    return ", ".join(format(r[key], fmt) for r in runs)


def _loads(runs: list[dict]) -> str:
    return ", ".join(f"{r['load'][0]:.1f}→{r['load'][1]:.1f}" for r in runs)


def _pairs(runs: list[dict]) -> str:
    return ", ".join(f"{r['p50_ms']:.1f}/{r['p99_ms']:.1f}" for r in runs)


def table(results: dict, systems: list[str]) -> str:
    lines = ["| tables | config | system | jobs/s (runs) | CPU ms/job (workers + PG + Redis) | idle CPU ms/s (per process) | load start→end |",
             "|---|---|---|---|---|---|---|"]
    for key, by_system in results["throughput"].items():
        state, config = key.split("/")
        for name in systems:
            runs = by_system.get(name)
            if not runs:
                continue
            lines.append(
                f"| {state} | {config} | {name} | {med(runs, 'jobs_per_s'):.0f} ({_each(runs, 'jobs_per_s', '.0f')}) "
                f"| {med(runs, 'cpu_ms_per_job'):.2f} ({med(runs, 'worker_ms_per_job'):.2f} + {med(runs, 'postgres_ms_per_job'):.2f}"
                f" + {med(runs, 'redis_ms_per_job'):.2f}) | {med(runs, 'idle_ms_per_s'):.1f} ({med(runs, 'idle_ms_per_s_per_process'):.1f}) "
                f"| {_loads(runs)} |")
    lines += ["", "| tables | system | created→started p50 ms | p99 ms (runs p50/p99) | commit returned→started p50 | p99 | load start→end |",
              "|---|---|---|---|---|---|---|"]
    for state, by_system in results["latency"].items():
        for name in systems:
            runs = by_system.get(name)
            if not runs:
                continue
            lines.append(f"| {state} | {name} | {med(runs, 'p50_ms'):.1f} | {med(runs, 'p99_ms'):.1f} "
                         f"({_pairs(runs)}) | {med(runs, 'commit_p50_ms'):.1f} | {med(runs, 'commit_p99_ms'):.1f} "
                         f"| {_loads(runs)} |")
    return "\n".join(lines)


def bloat(ours: Ours, args: argparse.Namespace) -> dict:
    """--bloat-jobs: run many jobs with purging on (retention 0 days) and report the tables' size."""
    ours.open("bloat", "fresh")
    try:
        env_retention = os.environ.get("CONTENTFORGE_JOB_RETENTION_DAYS")
        os.environ["CONTENTFORGE_JOB_RETENTION_DAYS"] = "0"
        os.environ["CONTENTFORGE_SWEEP_INTERVAL_SECONDS"] = "1"
        try:
            ours.start(2, args.threads)
        finally:
            os.environ.pop("CONTENTFORGE_SWEEP_INTERVAL_SECONDS")
            if env_retention is None:
                os.environ.pop("CONTENTFORGE_JOB_RETENTION_DAYS")
        started, done = time.perf_counter(), 0
        while done < args.bloat_jobs and not (args.bloat_max_seconds and time.perf_counter() - started > args.bloat_max_seconds):
            batch = min(args.bloat_batch, args.bloat_jobs - done)
            ours.enqueue_batch(batch)
            ours.wait_idle(3600)
            done += batch
            if args.bloat_vacuum_every and (done // args.bloat_batch) % args.bloat_vacuum_every == 0:
                assert ours.conn
                ours.conn.execute("VACUUM asset_processing_jobs")
                ours.conn.execute("VACUUM assets")
        time.sleep(3)  # one more sweep purges the last batch
        assert ours.conn
        ours.conn.execute("SELECT pg_stat_force_next_flush()")
        row = ours.conn.execute("""
            SELECT pg_total_relation_size('asset_processing_jobs'), pg_relation_size('asset_processing_jobs'),
                   s.n_live_tup, s.n_dead_tup FROM pg_stat_user_tables s WHERE s.relname = 'asset_processing_jobs'""").fetchone()
        return {"jobs": done, "seconds": time.perf_counter() - started, "total_bytes": row[0], "heap_bytes": row[1],
                "live_tuples": row[2], "dead_tuples": row[3]}
    finally:
        ours.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--states", default="fresh,analysed")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--latency-jobs", type=int, default=200)
    ap.add_argument("--latency-gap", type=float, default=0.02)
    ap.add_argument("--systems", default="contentforge,graphile,procrastinate")
    ap.add_argument("--procrastinate-python", help="a Python with procrastinate installed (its own virtualenv)")
    ap.add_argument("--graphile-version", default="latest")
    ap.add_argument("--redis-port", type=int, default=6391)
    ap.add_argument("--tenants", type=int, default=1,
                    help="contentforge: spread the jobs over this many tenants (the fair claim chooses between them)")
    ap.add_argument("--baseline-tree", type=Path,
                    help="also run contentforge from this source tree (a copy of an earlier commit) as 'contentforge-before'")
    ap.add_argument("--ours-variant", action="append", default=[], metavar="NAME:VAR=VALUE[,VAR=VALUE]",
                    help="also run this tree's contentforge with these settings as contentforge-NAME "
                         "(e.g. combined:CONTENTFORGE_WORKER_COMBINED_CALLS=1); repeatable")
    ap.add_argument("--bloat-jobs", type=int, default=0)
    ap.add_argument("--bloat-batch", type=int, default=10000)
    ap.add_argument("--bloat-vacuum-every", type=int, default=0)
    ap.add_argument("--bloat-max-seconds", type=float, default=0)
    args = ap.parse_args()
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    redis = RedisServer(args.redis_port)
    npm_dir = Path(tempfile.mkdtemp(prefix="cf-bench-graphile-"))
    results: dict[str, Any] = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
                               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "throughput": {}, "latency": {}, "versions": {}}
    systems: list[System] = []
    try:
        for name in wanted:
            if name == "contentforge":
                systems.append(Ours(redis, tenants=args.tenants))
                if args.baseline_tree:
                    systems.append(Ours(redis, args.baseline_tree.resolve(), "contentforge-before", args.tenants))
                for variant in args.ours_variant:
                    vname, _, assignments = variant.partition(":")
                    env = dict(a.split("=", 1) for a in assignments.split(",") if a)
                    systems.append(Ours(redis, name=f"contentforge-{vname}", tenants=args.tenants, env=env))
            elif name == "graphile":
                results["versions"]["graphile-worker"] = install_graphile(args.graphile_version, npm_dir)
                systems.append(Graphile(npm_dir / "node_modules"))
            elif name == "procrastinate":
                if not args.procrastinate_python:
                    ap.error("procrastinate needs --procrastinate-python")
                results["versions"]["procrastinate"] = subprocess.run(
                    [args.procrastinate_python, "-c", "import importlib.metadata as m; print(m.version('procrastinate'))"],
                    capture_output=True, text=True, check=True).stdout.strip()
                systems.append(Procrastinate(args.procrastinate_python))
        for s in systems:
            s.make_template()
        if args.bloat_jobs:
            results["bloat"] = bloat(next(s for s in systems if isinstance(s, Ours)), args)
            print(json.dumps(results, indent=2))
            return 0
        states = [s.strip() for s in args.states.split(",") if s.strip()]
        configs = [int(p) for p in args.processes.split(",") if p.strip()]
        for rep in range(args.repeat):
            order = systems[rep % len(systems):] + systems[:rep % len(systems)]
            for state in states:
                for p in configs:
                    for s in order:
                        r = throughput_run(s, f"{rep}", state, p, args.threads, args)
                        results["throughput"].setdefault(f"{state}/{p}x{args.threads}", {}).setdefault(s.name, []).append(r)
                        print(json.dumps({"rep": rep, "state": state, "config": f"{p}x{args.threads}", "system": s.name,
                                          **{k: v for k, v in r.items() if k != "idle_parts_ms_per_s"}}), file=sys.stderr)
                for s in order:
                    r = latency_run(s, f"{rep}l", state, args.threads, args)
                    results["latency"].setdefault(state, {}).setdefault(s.name, []).append(r)
                    print(json.dumps({"rep": rep, "state": state, "latency": s.name, **r}), file=sys.stderr)
        print(json.dumps(results, indent=2))
        print(table(results, [s.name for s in systems]))
    finally:
        for s in systems:
            drop_db(s.template)
        redis.stop()
        shutil.rmtree(npm_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
