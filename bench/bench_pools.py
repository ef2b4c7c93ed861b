"""Issue 14: what pools, caps and pauses cost the claim, and what pools buy against head-of-line blocking.

    .venv/bin/python bench/bench_pools.py claim --rounds 7
    .venv/bin/python bench/bench_pools.py throughput --before /tmp/cf14-base --rounds 3
    .venv/bin/python bench/bench_pools.py hol --transcodes 4 --seconds 10 --photos 30 --threads 4 --rounds 2

- ``claim``: claim_job on a backlog (--tenants x --jobs-per-tenant jobs of metadata, thumbnail and
  transcode over 3 fleet priorities), in a database migrated up to 0018 (before) and one up to 0019
  (after); each round times --claims claims in one rolled-back transaction, alternating databases.
  Reported: before (0018's claim_job), after without a pool (what `contentforge worker` without a
  pool calls: claim_job(w, lease, NULL)), and, for information, after with a pool of two types,
  after with 20 capped tenants, after with a paused job type.
- ``throughput``: bench/bench_queue.py (no-op jobs/s with 2 worker processes x 4 threads, and the
  claim latency of jobs queued one at a time) run alternately from the tree before the change
  (--before: a git worktree of that commit) and from this tree; medians over --rounds.
- ``hol``: --transcodes video transcodes of --seconds seconds at --height queued, then --photos photo
  uploads (metadata + thumbnail): p50/p95 from enqueue to thumbnail completed, with one pool of
  --threads threads (one worker process) vs a light and a heavy pool of --threads/2 each,
  alternating, on a fresh database each run.
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
import tempfile
import time
from pathlib import Path

import psycopg
from bench_queue import ADMIN, REDIS, _cpu, db_url
from bench_queue import drop_db as drop
from psycopg import sql

from schema.runner import load_migrations, migrate

HERE = Path(__file__).resolve().parent


def fresh(name: str, upto: int | None = None) -> str:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = db_url(name)
    migrate(url, migrations=load_migrations()[:upto] if upto else None)
    return url


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


# --- claim ---------------------------------------------------------------------------------------
def build_backlog(url: str, tenants: int, per_tenant: int) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("INSERT INTO tenants (name, slug) SELECT 'T' || g, 't-' || g FROM generate_series(1, %s) g", (tenants,))
        c.execute("""INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path)
                     SELECT t.id, 'a.mp4', 'video', 'video/mp4', 1, t.id || '/a' FROM tenants t""")
        c.execute("""INSERT INTO asset_processing_jobs (tenant_id, asset_id, job_type, priority, tenant_priority, input_params)
                     SELECT a.tenant_id, a.id, (ARRAY['metadata', 'thumbnail', 'transcode'])[1 + g %% 3],
                            4 + (g %% 3), 1 + (g %% 10), jsonb_build_object('tag', g::text)
                     FROM assets a, generate_series(1, %s) g""", (per_tenant,))
        c.execute("VACUUM ANALYZE asset_processing_jobs")


def time_claims(url: str, call: str, claims: int, setup: str = "") -> tuple[float, float]:
    """(wall ms, PostgreSQL backend CPU ms) per claim: CPU time is what the claim costs, and unlike
    wall time it does not move with the other work of a shared machine."""
    with psycopg.connect(url) as c:
        if setup:
            c.execute(setup)
        pid = c.info.backend_pid
        cpu0 = _cpu(pid)
        start = time.perf_counter()
        for _ in range(claims):
            c.execute(call).fetchone()
        elapsed = time.perf_counter() - start
        cpu = _cpu(pid) - cpu0
        c.rollback()
    return elapsed / claims * 1000, cpu / claims * 1000


def cmd_claim(a: argparse.Namespace) -> None:
    print(f"start: {uptime()}")
    before = fresh("cf_bench_pools_before", len(load_migrations()) - 1)
    after = fresh("cf_bench_pools_after")
    for url in (before, after):
        build_backlog(url, a.tenants, a.jobs_per_tenant)
    capped = ("INSERT INTO app_private.tenant_job_limits (tenant_id, max_running) "
              "SELECT id, 1000 FROM tenants ORDER BY id LIMIT 20")
    cases = {
        "before: claim_job(w, lease) at 0018": (before, "SELECT id FROM app_private.claim_job('bench', 30)", ""),
        "after: claim_job(w, lease, NULL)": (after, "SELECT id FROM app_private.claim_job('bench', 30, NULL)", ""),
        "after: pool {metadata,thumbnail}": (
            after, "SELECT id FROM app_private.claim_job('bench', 30, '{metadata,thumbnail}')", ""),
        "after: 20 capped tenants (cap 1000), no pool": (
            after, "SELECT id FROM app_private.claim_job('bench', 30, NULL)", capped),
        "after: transcode paused, no pool": (
            after, "SELECT id FROM app_private.claim_job('bench', 30, NULL)",
            "INSERT INTO app_private.job_pauses (job_type) VALUES ('transcode')"),
    }
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(a.rounds):
        for name, (url, call, setup) in cases.items():
            w, c = time_claims(url, call, a.claims, setup)
            wall[name].append(w)
            cpu[name].append(c)
    first = next(iter(cases))
    print(f"machine: {platform.node()} {os.cpu_count()} cpus; backlog {a.tenants} tenants x {a.jobs_per_tenant} jobs "
          f"(metadata/thumbnail/transcode, 3 priorities); {a.claims} claims per round, {a.rounds} rounds, interleaved")
    for label, times in (("backend CPU", cpu), ("wall", wall)):
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f" {label}, ms per claim (median; ratio to the first row):")
        for k, v in times.items():
            print(f"  {k}: {med[k]:.3f}, ratio {med[k] / med[first]:.2f}  (rounds: {', '.join(f'{x:.2f}' for x in v)})")
    print(f"end: {uptime()}")
    drop("cf_bench_pools_before")
    drop("cf_bench_pools_after")


# --- throughput ----------------------------------------------------------------------------------
def run_bench_queue(tree: Path, jobs: int, processes: int, threads: int, latency_jobs: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), TEST_REDIS_URL=REDIS)
    out = subprocess.run([sys.executable, str(tree / "bench" / "bench_queue.py"), "--jobs", str(jobs),
                          "--threads", str(threads), "--processes", f"1,{processes}" if processes != 1 else "1",
                          "--repeat", "1", "--latency-jobs", str(latency_jobs)],
                         cwd=tree, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def cmd_throughput(a: argparse.Namespace) -> None:
    print(f"start: {uptime()}")
    trees = {"before": Path(a.before).resolve(), "after": HERE.parent}
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    for r in range(a.rounds):
        for name, tree in (trees.items() if r % 2 == 0 else reversed(trees.items())):
            res = run_bench_queue(tree, a.jobs, a.processes, a.threads, a.latency_jobs)
            runs[name].append(res)
            print(json.dumps({name: {"jobs_per_s": {p: v["jobs_per_s"] for p, v in res["ours"].items()},
                                     "latency": res["ours_latency"]}}), file=sys.stderr)
    print(f"{a.rounds} rounds, alternating; {a.jobs} no-op jobs per throughput run, {a.threads} threads per process")
    summary: dict[str, dict[str, float]] = {}
    for name, rs in runs.items():
        s: dict[str, float] = {}
        for p in rs[0]["ours"]:
            s[f"jobs/s {p} proc"] = statistics.median(x["ours"][p]["jobs_per_s"] for x in rs)
            s[f"worker cpu ms/job {p} proc"] = statistics.median(x["ours"][p]["worker_cpu_ms_per_job"] for x in rs)
            s[f"postgres cpu ms/job {p} proc"] = statistics.median(x["ours"][p]["postgres_cpu_ms_per_job"] for x in rs)
        s["claim latency p50 ms"] = statistics.median(x["ours_latency"]["p50_ms"] for x in rs)
        s["claim latency p99 ms"] = statistics.median(x["ours_latency"]["p99_ms"] for x in rs)
        summary[name] = s
    for key in summary["before"]:
        b, f = summary["before"][key], summary["after"][key]
        print(f"  {key}: before {b:.2f}, after {f:.2f}, after/before {f / b:.2f}")
    print(f"end: {uptime()}")


# --- head-of-line blocking -----------------------------------------------------------------------
def cmd_hol(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE.parent))
    from contentforge.api import enqueue_many
    from contentforge.storage import open_storage
    from tests import media_factories as media

    print(f"start: {uptime()}")
    work = Path(tempfile.mkdtemp(prefix="cf-bench-hol-"))
    clip = media.video(work, "clip.mp4", size=(a.height * 16 // 9 // 2 * 2, a.height), seconds=a.seconds, rate=30)
    photo = media.photo(work, "photo.jpg", size=(3000, 2000))
    storage_dir = work / "storage"
    setups = {"shared": [("all", a.threads)], "split": [("light", a.threads // 2), ("heavy", a.threads - a.threads // 2)]}
    results: dict[str, list[dict[str, float]]] = {k: [] for k in setups}
    for r in range(a.rounds):
        for name in (list(setups) if r % 2 == 0 else list(reversed(setups))):
            url = fresh("cf_bench_hol")
            store = open_storage(storage_dir.as_uri())
            procs: list[subprocess.Popen[bytes]] = []
            try:
                with psycopg.connect(url, autocommit=True) as c:
                    tenant = c.execute("INSERT INTO tenants (name, slug) VALUES ('b', 'b') RETURNING id").fetchone()[0]
                    videos, photos = [], []
                    for i in range(a.transcodes + a.photos):
                        kind = "video" if i < a.transcodes else "image"
                        key = f"{tenant}/{i}/original"
                        store.put_file(key, clip if kind == "video" else photo,
                                       "video/mp4" if kind == "video" else "image/jpeg")
                        aid = c.execute("""INSERT INTO assets (tenant_id, original_filename, file_type, mime_type,
                                           file_size, storage_path) VALUES (%s, %s, %s, %s, 1, %s) RETURNING id""",
                                        (tenant, "c.mp4" if kind == "video" else "p.jpg", kind,
                                         "video/mp4" if kind == "video" else "image/jpeg", key)).fetchone()[0]
                        (videos if kind == "video" else photos).append(aid)
                for pool, threads in setups[name]:
                    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTFORGE_")}
                    env.update({"DATABASE_URL": url, "REDIS_URL": REDIS, "STORAGE_URL": storage_dir.as_uri(),
                                "CONTENTFORGE_QUEUE_NAME": "bench_hol", "CONTENTFORGE_METRICS_PORT": "0",
                                "CONTENTFORGE_LOG_LEVEL": "WARNING", "CONTENTFORGE_LOG_FORMAT": "json",
                                "CONTENTFORGE_SWEEP_INTERVAL_SECONDS": "1"})
                    args = ["--processes", "1", "--threads", str(threads)] + ([] if pool == "all" else ["--pool", pool])
                    procs.append(subprocess.Popen([sys.executable, "-m", "cli", "worker", *args], env=env,
                                                  cwd=HERE.parent, start_new_session=True, stderr=subprocess.DEVNULL))
                time.sleep(3.0)
                started = time.perf_counter()
                for v in videos:
                    enqueue_many(url, v, ["transcode"], params={"transcode": {"renditions": [a.height]}})
                time.sleep(a.gap)
                for p in photos:
                    enqueue_many(url, p, ["metadata", "thumbnail"])
                with psycopg.connect(url, autocommit=True) as c:
                    deadline = time.monotonic() + a.timeout
                    while c.execute("SELECT count(*) FROM asset_processing_jobs WHERE job_type = 'thumbnail' "
                                    "AND status NOT IN ('completed', 'failed')").fetchone()[0]:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{name}: thumbnails not done after {a.timeout} s")
                        time.sleep(0.2)
                    thumbs_done = time.perf_counter() - started
                    waits = sorted(float(r[0]) for r in c.execute(
                        "SELECT extract(epoch FROM completed_at - created_at) FROM asset_processing_jobs "
                        "WHERE job_type = 'thumbnail' AND status = 'completed'"))
                    failed = c.execute("SELECT count(*) FROM asset_processing_jobs WHERE status = 'failed'").fetchone()[0]
                assert len(waits) == a.photos and failed == 0, (len(waits), failed)
                res = {"p50_s": statistics.median(waits), "p95_s": waits[max(0, int(len(waits) * 0.95) - 1)],
                       "max_s": waits[-1], "all_thumbnails_s": thumbs_done}
                results[name].append(res)
                print(json.dumps({name: res}), file=sys.stderr)
            finally:
                for p in procs:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                drop("cf_bench_hol")
    print(f"{a.transcodes} transcodes of a {a.seconds} s {a.height}p clip (rendition {a.height}p), then {a.photos} "
          f"3000x2000 photos (metadata + thumbnail); {a.threads} worker threads in total; {a.rounds} rounds, alternating")
    for name, rs in results.items():
        print(f"  {name}: enqueue->thumbnail p50 {statistics.median(r['p50_s'] for r in rs):.1f} s, "
              f"p95 {statistics.median(r['p95_s'] for r in rs):.1f} s (runs: "
              + "; ".join(f"p50 {r['p50_s']:.1f} p95 {r['p95_s']:.1f}" for r in rs) + ")")
    print(f"end: {uptime()}")


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("claim")
    p.add_argument("--tenants", type=int, default=200)
    p.add_argument("--jobs-per-tenant", type=int, default=250)
    p.add_argument("--claims", type=int, default=300)
    p.add_argument("--rounds", type=int, default=7)
    p.set_defaults(fn=cmd_claim)
    p = sub.add_parser("throughput")
    p.add_argument("--before", required=True, help="a checkout of the commit before the change")
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--latency-jobs", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.set_defaults(fn=cmd_throughput)
    p = sub.add_parser("hol")
    p.add_argument("--transcodes", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--photos", type=int, default=100)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--gap", type=float, default=1.0, help="seconds between queuing the transcodes and the photos")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--timeout", type=float, default=1800)
    p.set_defaults(fn=cmd_hol)
    a = ap.parse_args()
    a.fn(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
