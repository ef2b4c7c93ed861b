"""Pools, caps, per-process type limits, pause/resume and the pool metrics with real `contentforge
worker` processes, real PostgreSQL and Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from contentforge.settings import Settings
from contentforge.storage import open_storage
from tests import factories as f
from tests import media_factories as media
from tests.integration.queue.conftest import World, enqueue, job, wait_for, wait_status, worker_env

pytestmark = pytest.mark.slow


def max_overlap(rows: list[dict[str, Any]]) -> int:
    """Most jobs running at one instant, from started_at/completed_at alone (an end at the same
    instant as a start is counted first: a claim's start is taken after the completion it follows)."""
    events = sorted([(r["started_at"], 1) for r in rows] + [(r["completed_at"], -1) for r in rows],
                    key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


class Sampler:
    """Counts a tenant's running rows continuously in a thread of its own."""

    def __init__(self, db_url: str, tenant: uuid.UUID) -> None:
        self.db_url, self.tenant = db_url, tenant
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.db_url, autocommit=True) as c:
            while not self._stop.is_set():
                self.samples.append(c.execute(
                    "SELECT count(*) FROM asset_processing_jobs WHERE status = 'running' AND tenant_id = %s",
                    (self.tenant,)).fetchone()[0])

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def finished(conn: psycopg.Connection, tenant: uuid.UUID) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM asset_processing_jobs WHERE tenant_id = %s AND job_type = 'noop'",
                        (tenant,)).fetchall()


def all_completed(conn: psycopg.Connection, ids: list[uuid.UUID]) -> bool:
    return conn.execute("SELECT count(*) = %s AS done FROM asset_processing_jobs WHERE id = ANY(%s) AND status = 'completed'",
                        (len(ids), ids)).fetchone()["done"]


def test_a_worker_for_thumbnails_never_claims_a_transcode(spawn_worker, world: World, conn: psycopg.Connection,
                                                          settings: Settings, tmp_path: Path) -> None:
    """`contentforge worker --job-types thumbnail` makes the poster of a video and leaves its transcode pending, unclaimed."""
    src = media.video(tmp_path, seconds=2.0)
    asset = f.asset(conn, world.tenant, world.user, file_type="video", original_filename="clip.mp4",
                    mime_type="video/mp4")
    key = conn.execute("SELECT storage_path FROM assets WHERE id = %s", (asset,)).fetchone()["storage_path"]
    open_storage(settings.storage_url or "").put_file(key, src, "video/mp4")
    transcode = enqueue(conn, asset, "transcode", priority=9)  # ahead of the thumbnail in priority
    thumbnail = enqueue(conn, asset, "thumbnail", priority=5)
    spawn_worker("--job-types", "thumbnail", CONTENTFORGE_WORKER_THREADS="4")
    wait_status(conn, thumbnail, "completed", timeout=90)
    pools = conn.execute("SELECT pool, job_types FROM app_private.worker_pools").fetchall()
    assert [(p["pool"], p["job_types"]) for p in pools] == [("types-thumbnail", ["thumbnail"])]
    row = job(conn, transcode)
    assert (row["status"], row["attempts"], row["worker_id"], row["started_at"]) == ("pending", 0, None, None)


def test_a_capped_tenant_never_runs_more_than_its_cap(spawn_worker, world: World, conn: psycopg.Connection,
                                                       db_url: str) -> None:
    """With 4 worker processes x 4 threads, a tenant capped at 2 never has more than 2 jobs running,
    by continuous sampling and by the started/finished times of every job, while another tenant runs wider."""
    other = f.tenant(conn)
    other_asset = f.asset(conn, other, None)
    conn.execute("SELECT app_private.set_tenant_job_limit(%s, 2)", (world.tenant,))
    capped = [enqueue(conn, world.asset, params={"sleep_seconds": 0.25, "tag": f"c{i}"}) for i in range(30)]
    free = [enqueue(conn, other_asset, params={"sleep_seconds": 0.25, "tag": f"f{i}"}) for i in range(40)]
    with Sampler(db_url, world.tenant) as mine, Sampler(db_url, other) as theirs:
        spawn_worker(CONTENTFORGE_WORKER_PROCESSES="4", CONTENTFORGE_WORKER_THREADS="4")
        wait_for(lambda: all_completed(conn, capped + free), 180, "every job to complete")
    rows = finished(conn, world.tenant)
    assert {r["attempts"] for r in rows} == {1}
    print(f"capped tenant: {len(mine.samples)} samples, max {max(mine.samples)}, "
          f"timestamps max {max_overlap(rows)}; other tenant max {max(theirs.samples)}, "
          f"timestamps max {max_overlap(finished(conn, other))}")
    assert max(mine.samples) == 2
    assert max_overlap(rows) <= 2
    assert max_overlap(finished(conn, other)) > 2  # the fleet had the threads to run more at once


def test_per_process_type_limit(spawn_worker, world: World, conn: psycopg.Connection) -> None:
    """CONTENTFORGE_WORKER_TYPE_CONCURRENCY=noop=1 runs one noop at a time on a 4-thread worker, and all of them."""
    ids = [enqueue(conn, world.asset, params={"sleep_seconds": 0.3, "tag": str(i)}) for i in range(6)]
    spawn_worker(CONTENTFORGE_WORKER_THREADS="4", CONTENTFORGE_WORKER_TYPE_CONCURRENCY="noop=1")
    wait_for(lambda: all_completed(conn, ids), 60, "every job to complete")
    assert max_overlap(finished(conn, world.tenant)) == 1


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=worker_env(settings), capture_output=True,
                          text=True, timeout=60, check=False)


def test_paused_tenant_waits_and_resumed_starts_before_the_sweep(spawn_worker, world: World,
                                                                 conn: psycopg.Connection,
                                                                 settings: Settings) -> None:
    """A paused tenant's job stays pending while another tenant's runs; after `jobs resume` it runs without
    waiting for the relay's sweep (set to 10 minutes here)."""
    other_asset = f.asset(conn, f.tenant(conn), None)
    done = _cli(settings, "jobs", "pause", "--tenant", str(world.tenant), "--reason", "flood")
    assert done.returncode == 0, done.stderr
    spawn_worker(CONTENTFORGE_SWEEP_INTERVAL_SECONDS="600")
    wait_for(lambda: conn.execute("SELECT count(*) FROM app_private.worker_pools").fetchone()["count"], 30,
             "the worker to report its pool")
    held = enqueue(conn, world.asset)
    runs = enqueue(conn, other_asset)
    wait_status(conn, runs, "completed", timeout=60)
    assert job(conn, held)["status"] == "pending"
    listed = _cli(settings, "jobs", "paused", "--json")
    assert '"reason": "flood"' in listed.stdout and '"pending": 1' in listed.stdout
    resumed = _cli(settings, "jobs", "resume", "--tenant", str(world.tenant))
    assert resumed.returncode == 0, resumed.stderr
    wait_status(conn, held, "completed", timeout=60)  # well before the next sweep, 10 minutes away
    again = _cli(settings, "jobs", "resume", "--tenant", str(world.tenant))
    assert again.returncode == 1 and "was not paused" in again.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_pool_metrics_on_the_supervisors_endpoint(spawn_worker, world: World, conn: psycopg.Connection,
                                                  settings: Settings) -> None:
    """A heavy-pool worker's endpoint reports each pool's ready jobs and oldest age, and metadata as served by no pool."""
    video = f.asset(conn, world.tenant, world.user, file_type="video", original_filename="v.mp4", mime_type="video/mp4")
    for jt in ("metadata", "thumbnail"):
        enqueue(conn, video, jt)
    conn.execute("UPDATE asset_processing_jobs SET run_after = now() - interval '60 seconds'")
    port = _free_port()
    spawn_worker("--pool", "heavy", CONTENTFORGE_METRICS_PORT=str(port))

    def light_reported() -> dict[Any, float] | None:
        m = _scrape(port)
        return m if m.get(("contentforge_job_type_serving_pools", (("job_type", "transcode"),))) == 1 else None

    m = wait_for(light_reported, 60, "the pool metrics")
    assert m[("contentforge_pool_ready_jobs", (("pool", "light"),))] == 2
    assert m[("contentforge_pool_oldest_ready_seconds", (("pool", "light"),))] >= 60
    assert m[("contentforge_pool_ready_jobs", (("pool", "heavy"),))] == 0
    assert m[("contentforge_job_type_serving_pools", (("job_type", "metadata"),))] == 0
    assert m[("contentforge_job_type_ready_jobs", (("job_type", "thumbnail"),))] == 1
    stats = _cli(settings, "jobs", "stats")
    assert stats.returncode == 0
    line = next(x for x in stats.stdout.splitlines() if x.startswith("metadata"))
    assert "NO RUNNING POOL" in line and "ready jobs that no running pool serves: metadata, thumbnail" in stats.stderr


def test_relay_nudges_only_the_pool_that_can_take_the_job(conn: psycopg.Connection, world: World,
                                                          settings: Settings) -> None:
    """With a light and a heavy pool reported, a ready thumbnail becomes one nudge on the light queue and none on the heavy one."""
    from workers.broker import close_broker, make_broker, queue_size
    from workers.relay import Relay

    base = settings.queue_name
    conn.execute("SELECT app_private.register_worker_pool('a', 'light', %s, '{metadata,thumbnail,optimize}', 4)",
                 (f"{base}-light",))
    conn.execute("SELECT app_private.register_worker_pool('b', 'heavy', %s, '{transcode,transcript}', 4)",
                 (f"{base}-heavy",))
    video = f.asset(conn, world.tenant, world.user, file_type="video", original_filename="v.mp4", mime_type="video/mp4")
    enqueue(conn, video, "thumbnail")
    broker = make_broker(settings.redis_url or "")
    relay = Relay(database_url=settings.database_url or "", broker=broker, queue_name=base, lease_seconds=3,
                  sweep_interval=1, retention_days=7)
    try:
        assert relay.top_up() == 1
        assert (queue_size(broker, f"{base}-light"), queue_size(broker, f"{base}-heavy"), queue_size(broker, base)) == (1, 0, 0)
        enqueue(conn, video, "transcode")
        assert relay.top_up() == 1 and queue_size(broker, f"{base}-heavy") == 1
    finally:
        for q in (base, f"{base}-light", f"{base}-heavy"):
            broker.flush(q)
        relay.store.close()
        close_broker(broker)


def test_bad_pool_settings_exit_2(settings: Settings) -> None:
    """An unknown pool, an unknown job type or a malformed limit is refused at start with exit 2 and the reason."""
    for args, env, message in (
        (["--pool", "gpu"], {}, "unknown pool 'gpu'"),
        (["--job-types", "thumbnail,resize"], {}, "unknown job type resize"),
        ([], {"CONTENTFORGE_WORKER_TYPE_CONCURRENCY": "transcode=0"}, "is not type=N"),
        ([], {"CONTENTFORGE_WORKER_POOLS": "gpu"}, "is not name=type,type"),
    ):
        done = subprocess.run([sys.executable, "-m", "cli", "worker", *args], env=worker_env(settings, **env),
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2 and message in done.stderr, (args, env, done.stderr)


def test_cli_caps_a_tenant(world: World, conn: psycopg.Connection, settings: Settings) -> None:
    """`jobs limit` sets and clears a tenant's cap; `jobs limits` lists it; a cap of 0 exits 2."""
    assert _cli(settings, "jobs", "limit", "--tenant", str(world.tenant), "--max-running", "3").returncode == 0
    listed = _cli(settings, "jobs", "limits", "--json").stdout
    assert f'"tenant_id": "{world.tenant}"' in listed and '"max_running": 3' in listed
    bad = _cli(settings, "jobs", "limit", "--tenant", str(world.tenant), "--max-running", "0")
    assert bad.returncode == 2 and "at least 1" in bad.stderr
    assert _cli(settings, "jobs", "limit", "--tenant", str(world.tenant), "--clear").returncode == 0
    with psycopg.connect(settings.database_url or "", row_factory=dict_row) as c:
        assert c.execute("SELECT count(*) FROM app_private.tenant_job_limits").fetchone()["count"] == 0
