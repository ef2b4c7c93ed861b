"""Fixtures for the job queue: an asset to work on, settings with short leases and sweeps, an
in-process worker (Dramatiq ``Worker`` + the relay) and real `contentforge worker` subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import psycopg
import pytest

from contentforge.settings import Settings
from tests import factories as f

#: Short timings so that recovery paths run in seconds (production defaults: 30 s lease, 5 s sweep).
FAST = {"lease_seconds": 3, "sweep_interval_seconds": 0.5, "retry_base_seconds": 0.2,
        "retry_max_seconds": 1.0, "shutdown_grace_seconds": 5.0}


@dataclass
class World:
    tenant: uuid.UUID
    user: uuid.UUID
    asset: uuid.UUID


@pytest.fixture
def world(conn: psycopg.Connection) -> World:
    """One tenant with an author and one image asset."""
    user = f.user(conn)
    tenant = f.tenant(conn)
    f.member(conn, tenant, user, "author")
    return World(tenant, user, f.asset(conn, tenant, user))


@pytest.fixture
def settings(db_url: str, redis_url: str, run_id: str, tmp_path: Path) -> Settings:
    """Settings for this test: its own database, its own Dramatiq queue, fast timings."""
    return Settings(DATABASE_URL=db_url, REDIS_URL=redis_url, STORAGE_URL=(tmp_path / "storage").as_uri(),
                    queue_name=f"q_{run_id}", metrics_port=0, allow_test_jobs=True, worker_poll_ms=10,
                    log_format="json", **FAST)


def enqueue(conn: psycopg.Connection, asset: uuid.UUID, job_type: str = "noop", **kw: Any) -> uuid.UUID:
    from psycopg.types.json import Jsonb

    params = Jsonb(kw.pop("params", {}))
    row = conn.execute(
        "SELECT enqueue_asset_job(asset_id => %s, job_type => %s, params => %s, priority => %s) AS id",
        (asset, job_type, params, kw.pop("priority", 5)),
    ).fetchone()
    return row["id"]


def job(conn: psycopg.Connection, job_id: uuid.UUID) -> dict[str, Any]:
    return conn.execute("SELECT * FROM asset_processing_jobs WHERE id = %s", (job_id,)).fetchone()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_status(conn: psycopg.Connection, job_id: uuid.UUID, status: str, timeout: float = 10) -> dict[str, Any]:
    return wait_for(lambda: (r := job(conn, job_id))["status"] == status and r, timeout,
                    f"job {job_id} to be {status} (now {job(conn, job_id)['status']})")


class InProcessWorker:
    """A Dramatiq Worker with our actor, plus the relay, in this process."""

    def __init__(self, settings: Settings, threads: int = 2, relay: bool = True, relay_class: type | None = None) -> None:
        from workers.actors import declare
        from workers.broker import make_broker
        from workers.middleware import ClearLogContext
        from workers.relay import Relay
        from workers.runtime import Runtime, configure

        assert settings.redis_url and settings.database_url
        self.settings = settings
        self.broker = make_broker(settings.redis_url)
        self.broker.add_middleware(ClearLogContext())
        self.runtime = Runtime(settings, settings.database_url)
        configure(self.runtime)
        self.actor = declare(self.broker, settings.queue_name)
        self.broker.flush(settings.queue_name)
        self.worker = dramatiq.Worker(self.broker, queues={settings.queue_name}, worker_threads=threads,
                                      worker_timeout=settings.worker_poll_ms)
        self.relay = (relay_class or Relay)(database_url=settings.database_url, broker=make_broker(settings.redis_url),
                           queue_name=settings.queue_name, lease_seconds=settings.lease_seconds,
                           sweep_interval=settings.sweep_interval_seconds,
                           retention_days=settings.job_retention_days) if relay else None
        self._stop = threading.Event()
        self._relay_thread: threading.Thread | None = None

    def start(self, *, consume: bool = True) -> InProcessWorker:
        if consume:
            self.worker.start()
        if self.relay:
            self._relay_thread = threading.Thread(target=self.relay.run, args=(self._stop,), daemon=True)
            self._relay_thread.start()
            wait_for(self.relay.active.is_set, 5, "the relay to become active")
        return self

    def stop(self) -> None:
        self._stop.set()
        self.runtime.stopping.set()
        with contextlib.suppress(Exception):
            self.worker.stop(timeout=5000)
        if self._relay_thread:
            self._relay_thread.join(5)
        self.broker.flush(self.settings.queue_name)
        self.runtime.close()
        from workers.broker import close_broker

        close_broker(self.broker)
        if self.relay:
            close_broker(self.relay.broker)


@pytest.fixture
def in_process(settings: Settings) -> Iterator[Callable[..., InProcessWorker]]:
    """Start an in-process worker (and relay) with these settings; stopped after the test."""
    started: list[InProcessWorker] = []

    def start(threads: int = 2, relay: bool = True, consume: bool = True, relay_class: type | None = None,
              **overrides: Any) -> InProcessWorker:
        w = InProcessWorker(settings.model_copy(update=overrides), threads=threads, relay=relay,
                            relay_class=relay_class)
        started.append(w)
        return w.start(consume=consume)

    yield start
    for w in started:
        w.stop()


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTFORGE_")}
    env.update({
        "DATABASE_URL": settings.database_url or "", "REDIS_URL": settings.redis_url or "",
        "STORAGE_URL": settings.storage_url or "",
        "CONTENTFORGE_QUEUE_NAME": settings.queue_name,
        "CONTENTFORGE_LEASE_SECONDS": str(settings.lease_seconds),
        "CONTENTFORGE_SWEEP_INTERVAL_SECONDS": str(settings.sweep_interval_seconds),
        "CONTENTFORGE_RETRY_BASE_SECONDS": str(settings.retry_base_seconds),
        "CONTENTFORGE_RETRY_MAX_SECONDS": str(settings.retry_max_seconds),
        "CONTENTFORGE_SHUTDOWN_GRACE_SECONDS": str(settings.shutdown_grace_seconds),
        "CONTENTFORGE_METRICS_PORT": "0", "CONTENTFORGE_ALLOW_TEST_JOBS": "true",
        "CONTENTFORGE_LOG_FORMAT": "json", "CONTENTFORGE_WORKER_PROCESSES": "1",
        "CONTENTFORGE_WORKER_THREADS": "2",
    })
    env.update(extra)
    return env


@pytest.fixture
def spawn_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `contentforge worker` subprocesses (each in its own process group); killed after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(*args: str, **extra: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker{len(procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen([sys.executable, "-m", "cli", "worker", *args], env=worker_env(settings, **extra),
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        procs.append(p)
        return p

    yield spawn
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
