"""What operators rely on: Redis outages, the `contentforge jobs` commands, the Prometheus endpoint,
the per-job structured log lines, and metric files of restarted worker processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from contentforge.settings import Settings
from tests.integration.queue.conftest import World, enqueue, job, wait_for, wait_status, worker_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of this test's own on a free loopback port, which the test may kill and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is needed for this test"
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            wait_for(lambda: _pings(client), 5, "redis-server to answer")
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server, killed after the test."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


# --- Redis down ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_jobs_queued_while_redis_is_down_run_once_it_is_back(own_redis: RedisServer, in_process, world: World,
                                                            conn: psycopg.Connection) -> None:
    """Jobs enqueued while Redis is down wait, then all run exactly once after Redis comes back empty."""
    in_process(threads=2, redis_url=own_redis.url)
    before = enqueue(conn, world.asset, params={"tag": "0"})
    wait_status(conn, before, "completed")

    own_redis.kill()
    during = [enqueue(conn, world.asset, params={"tag": str(n)}) for n in range(1, 6)]
    time.sleep(1.5)  # three sweeps: nothing can be nudged, nothing may run or be lost
    assert {job(conn, j)["status"] for j in during} == {"pending"}

    own_redis.start()  # a fresh, empty Redis: every nudge sent before is gone
    back_at = time.monotonic()
    for j in during:
        wait_status(conn, j, "completed", timeout=20)
    print(f"redis outage recovery: {time.monotonic() - back_at:.2f} s")
    assert [job(conn, j)["attempts"] for j in during] == [1] * len(during)


# --- the CLI -------------------------------------------------------------------------------------
def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "jobs", *args], env=worker_env(settings),
                          capture_output=True, text=True, timeout=60)


def test_jobs_show_prints_the_row_as_json_and_fails_for_an_unknown_id(settings: Settings, world: World,
                                                                       conn: psycopg.Connection) -> None:
    """`jobs show --json` prints the job's row and exits 0; an unknown id exits 1 with a message."""
    job_id = enqueue(conn, world.asset, params={"tag": "1"}, priority=8)
    shown = _cli(settings, "show", str(job_id), "--json")
    assert shown.returncode == 0, shown.stderr
    row = json.loads(shown.stdout)
    assert (row["id"], row["status"], row["priority"], row["input_params"]) == (str(job_id), "pending", 8, {"tag": "1"})

    missing = uuid.uuid4()
    unknown = _cli(settings, "show", str(missing))
    assert unknown.returncode == 1
    assert f"job {missing} does not exist" in unknown.stderr


def test_jobs_cancel_and_retry_report_what_changed_in_json_and_exit_codes(settings: Settings, world: World,
                                                                          conn: psycopg.Connection) -> None:
    """cancel then retry each exit 0 with changed=true; repeating either exits 1 with changed=false."""
    job_id = enqueue(conn, world.asset)

    first = _cli(settings, "cancel", str(job_id), "--json")
    assert (first.returncode, json.loads(first.stdout)) == (0, {"job_id": str(job_id), "changed": True})
    assert job(conn, job_id)["status"] == "cancelled"
    again = _cli(settings, "cancel", str(job_id), "--json")
    assert (again.returncode, json.loads(again.stdout)["changed"]) == (1, False)

    retried = _cli(settings, "retry", str(job_id), "--json")
    assert (retried.returncode, json.loads(retried.stdout)["changed"]) == (0, True)
    assert (job(conn, job_id)["status"], job(conn, job_id)["attempts"]) == ("pending", 0)
    pending = _cli(settings, "retry", str(job_id))
    assert pending.returncode == 1
    assert "nothing to retry" in pending.stdout


# --- the Prometheus endpoint and metric files ----------------------------------------------------
def _scrape(port: int) -> dict[str, float]:
    """The endpoint's samples as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.slow
def test_metrics_endpoint_serves_job_counters_histogram_depth_and_oldest_age(
        spawn_worker, world: World, conn: psycopg.Connection) -> None:
    """The worker's /metrics shows queue depth and oldest pending age while a job waits, then the
    claimed/completed/failed counters and the duration histogram of what ran."""
    port = _free_port()
    spawn_worker(CONTENTFORGE_METRICS_PORT=str(port), CONTENTFORGE_WORKER_THREADS="1")
    slow = enqueue(conn, world.asset, params={"sleep_seconds": 2})
    wait_status(conn, slow, "running", timeout=15)
    waiting = enqueue(conn, world.asset, params={"tag": "1"})
    time.sleep(0.5)
    busy = wait_for(lambda: _ok_scrape(port), 10, "the metrics endpoint")
    assert busy['contentforge_queue_jobs{status="running"}'] == 1
    assert busy['contentforge_queue_jobs{status="pending"}'] == 1
    assert busy["contentforge_queue_oldest_pending_seconds"] >= 0.4

    failing = enqueue(conn, world.asset, params={"fail": "permanent"})
    wait_status(conn, waiting, "completed", timeout=15)
    wait_status(conn, failing, "failed", timeout=15)
    with conn.transaction():  # 50 finished jobs that no worker saw, so the estimate has rows to go on
        conn.execute("""SELECT enqueue_asset_job(asset_id => %s, job_type => 'noop', params => jsonb_build_object('tag', g::text))
                        FROM generate_series(1, 50) g""", (world.asset,))
        conn.execute("""UPDATE asset_processing_jobs SET status = 'completed', completed_at = now()
                        WHERE status = 'pending'""")
    conn.execute("ANALYZE asset_processing_jobs")  # finished counts are planner estimates
    done = _scrape(port)
    assert done['contentforge_jobs_claimed_total{job_type="noop"}'] == 3
    assert done['contentforge_jobs_completed_total{job_type="noop"}'] == 2
    assert done['contentforge_jobs_failed_total{job_type="noop",result="failed"}'] == 1
    assert done['contentforge_job_duration_seconds_count{job_type="noop",outcome="completed"}'] == 2
    assert done['contentforge_job_duration_seconds_bucket{job_type="noop",le="5.0",outcome="completed"}'] == 2
    assert done['contentforge_job_duration_seconds_bucket{job_type="noop",le="1.0",outcome="completed"}'] == 1
    assert done['contentforge_queue_jobs{status="pending"}'] == 0
    assert 40 <= done['contentforge_queue_jobs{status="completed"}'] <= 60  # 52, estimated
    assert done["contentforge_queue_oldest_pending_seconds"] == 0


def _ok_scrape(port: int) -> dict[str, float] | None:
    try:
        return _scrape(port)
    except OSError:
        return None


@pytest.mark.slow
def test_metric_files_of_a_crashed_worker_process_are_folded_into_the_archive(
        spawn_worker, world: World, conn: psycopg.Connection) -> None:
    """When a worker process dies and is restarted, its metric files are removed and its counts kept."""
    conn.execute("UPDATE app_private.job_types SET default_max_attempts = 1 WHERE job_type = 'noop'")
    port = _free_port()
    supervisor = spawn_worker(CONTENTFORGE_METRICS_PORT=str(port), CONTENTFORGE_WORKER_THREADS="1")
    ok = enqueue(conn, world.asset, params={"tag": "1"})
    wait_status(conn, ok, "completed", timeout=15)
    (first,) = wait_for(lambda: _children(supervisor.pid), 5, "the worker process")
    metrics_dir = Path(_environ(first)["PROMETHEUS_MULTIPROC_DIR"])
    assert (metrics_dir / f"counter_{first}.db").exists()

    crash = enqueue(conn, world.asset, params={"crash": True})
    wait_for(lambda: (kids := _children(supervisor.pid)) and kids != [first], 20, "a new worker process")
    assert not list(metrics_dir.glob(f"*_{first}.db"))
    assert (metrics_dir / "counter_archive.db").exists()
    wait_status(conn, crash, "failed", timeout=20)  # lease expired, no attempts left
    after = _scrape(port)
    assert after['contentforge_jobs_claimed_total{job_type="noop"}'] == 2  # both claims of the dead process
    assert after['contentforge_jobs_completed_total{job_type="noop"}'] == 1


# --- structured logs -----------------------------------------------------------------------------
def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            lines.append(json.loads(raw))
    return lines


@pytest.mark.slow
def test_every_log_line_of_a_job_carries_its_identity_and_each_attempt_has_one_summary(
        spawn_worker, world: World, conn: psycopg.Connection, tmp_path: Path) -> None:
    """Log lines with a job_id also carry asset_id, tenant_id, job_type and attempt, and each attempt
    of a job writes exactly one `job finished` summary line with its outcome."""
    conn.execute("UPDATE app_private.job_types SET default_max_attempts = 2 WHERE job_type = 'noop'")
    proc = spawn_worker(CONTENTFORGE_LOG_LEVEL="INFO")
    ok = enqueue(conn, world.asset, params={"tag": "1"})
    flaky = enqueue(conn, world.asset, params={"fail": "transient"})
    wait_status(conn, ok, "completed", timeout=15)
    wait_status(conn, flaky, "failed", timeout=20)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)

    lines = _json_lines(tmp_path / "worker0.log")
    of_jobs = [line for line in lines if "job_id" in line]
    assert of_jobs, "no job log lines"
    for line in of_jobs:
        assert {"asset_id", "tenant_id", "job_type", "attempt"} <= line.keys(), line
        assert (line["asset_id"], line["tenant_id"], line["job_type"]) == (str(world.asset), str(world.tenant), "noop")
    summaries = [(line["job_id"], line["attempt"], line["outcome"]) for line in of_jobs
                 if line["event"] == "job finished"]
    assert sorted(summaries) == sorted([(str(ok), 1, "completed"), (str(flaky), 1, "retry"),
                                        (str(flaky), 2, "failed")])
    assert all("duration_s" in line for line in of_jobs if line["event"] == "job finished")
    # The context is cleared after each job: the worker's own lines name no job.
    assert not [line for line in lines if line.get("event") == "worker process stopped" and "job_id" in line]
