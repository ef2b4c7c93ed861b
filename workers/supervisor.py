"""`contentforge worker`: worker processes, the relay and the metrics endpoint, supervised.

The supervisor starts ``processes`` worker processes (``python -m workers.process``), runs the
relay in a thread (one relay is active per database; the others stand by), and serves Prometheus
metrics gathered from all its processes. A worker process that dies (a job crashed it, OOM) is
started again. SIGTERM/SIGINT: every worker process drains (running jobs get the grace period,
then are released) and the supervisor exits 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from contentforge.db import connect
from contentforge.errors import BrokerUnavailable, DatabaseUnavailable
from contentforge.logging import get_logger
from contentforge.services import broker as broker_url
from contentforge.services import database, session_database
from contentforge.settings import Settings
from contentforge.signals import stop_on_signals
from workers.scratch import remove_scratch_of_dead_workers

log = get_logger(__name__)

#: How long a starting worker waits for PostgreSQL and Redis before it exits 3: long enough to ride
#: out a restart of either (or of a container started at the same time), short enough to report a
#: wrong URL promptly.
STARTUP_WAIT_SECONDS = 15.0
#: A worker process that exits within this many seconds of starting counts as a crash loop and is
#: restarted with a growing delay, so a broken deployment does not spin the CPU.
CRASH_LOOP_SECONDS = 5.0


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    started: float
    restarts: int = 0


def _start_metrics(port: int, multiproc_dir: str, database_url: str, pools: dict[str, Any]) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    from workers.multiproc import LockedMultiProcessCollector
    from workers.pools import POOL_STALE_SECONDS
    from workers.queue_metrics import QueueCollector

    registry = CollectorRegistry()
    LockedMultiProcessCollector(registry, path=multiproc_dir)
    registry.register(QueueCollector(database_url, pools=pools, stale_seconds=POOL_STALE_SECONDS))
    try:
        start_http_server(port, registry=registry)
        log.info("metrics endpoint up", port=port)
    except OSError as exc:
        log.warning("metrics endpoint not started", port=port, error=str(exc))


def run(settings: Settings) -> int:
    from contentforge.pooler import probe, require_session
    from workers.pools import resolve_pool, type_limits

    resolve_pool(settings)  # a bad --pool, --job-types or pool setting exits 2 before anything starts
    type_limits(settings.worker_type_concurrency)
    stop = stop_on_signals()  # before the embedded services start
    with database(settings) as db_url, broker_url(settings) as redis_url:
        if stop.is_set():
            log.info("worker stopped before it started")
            return 0
        # The relay needs a session (LISTEN, its election lock); the worker processes do not, and
        # prepare their statements only on a connection that proved to be a session.
        relay_url, setting = session_database(settings, db_url)
        if not _services_reachable([db_url, relay_url], redis_url, stop):
            return 0
        # Reachable a moment ago: a failure now is an outage at start, exit 3 like the wait above.
        found = require_session(relay_url, process="the relay of `contentforge worker`", setting=setting,
                                needs="LISTEN for new jobs, and the advisory lock that keeps one relay active")
        if settings.worker_prepared_statements == "auto":
            try:
                verdict = found.verdict if relay_url == db_url else probe(db_url).verdict
            except DatabaseUnavailable:
                verdict = "unknown"  # the worker processes wait for it; without prepared statements
            prepared = "on" if verdict == "session" else "off"
            settings = settings.model_copy(update={"worker_prepared_statements": prepared})
        log.info("worker connections", prepared_statements=settings.worker_prepared_statements)
        return _supervise(settings, db_url, redis_url, stop, relay_url)


def _services_reachable(db_urls: list[str], redis_url: str, stop: threading.Event) -> bool:
    """Wait up to STARTUP_WAIT_SECONDS for PostgreSQL and Redis; False when stopped meanwhile.

    Still unreachable after that is a configuration problem (or a real outage): DatabaseUnavailable
    or BrokerUnavailable propagates and the CLI exits 3 with the address, password hidden, instead
    of starting processes that could only log warnings.
    """
    from workers.broker import check_reachable

    deadline = time.monotonic() + STARTUP_WAIT_SECONDS
    while True:
        try:
            for db_url in dict.fromkeys(db_urls):  # DATABASE_URL, and DATABASE_SESSION_URL when set
                connect(db_url, connect_timeout=5).close()
            check_reachable(redis_url)
            return True
        except (DatabaseUnavailable, BrokerUnavailable) as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("waiting for services before starting", error=str(exc).splitlines()[0])
            if stop.wait(1.0):
                return False


def _supervise(settings: Settings, db_url: str, redis_url: str, stop: threading.Event,
               relay_url: str | None = None) -> int:
    from workers.broker import make_broker
    from workers.pools import PoolRegistration, named_pools, resolve_pool
    from workers.relay import Relay

    pool = resolve_pool(settings)
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": db_url, "REDIS_URL": redis_url,
        "CONTENTFORGE_QUEUE_NAME": settings.queue_name,
        "CONTENTFORGE_WORKER_THREADS": str(settings.worker_threads),
        "CONTENTFORGE_WORKER_PREPARED_STATEMENTS": settings.worker_prepared_statements,
        "CONTENTFORGE_WORKER_POOLS": settings.worker_pools,
        "CONTENTFORGE_WORKER_TYPE_CONCURRENCY": settings.worker_type_concurrency,
    })
    # The worker processes serve the pool resolved here (the command line wins over the environment).
    env.pop("CONTENTFORGE_WORKER_JOB_TYPES", None)
    env.pop("CONTENTFORGE_WORKER_POOL", None)
    if pool.job_types is not None:
        env["CONTENTFORGE_WORKER_JOB_TYPES"] = ",".join(pool.job_types)
    registration = PoolRegistration(db_url, pool, pool.queue(settings.queue_name),
                                    settings.worker_processes * settings.worker_threads)
    registration.start(stop)
    metrics_dir = None
    if settings.metrics_port:
        metrics_dir = tempfile.mkdtemp(prefix="cf-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        _start_metrics(settings.metrics_port, metrics_dir, db_url,
                       {**named_pools(settings.worker_pools), pool.name: pool.job_types})

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "workers.process"], env=env)

    children = [Child(spawn(), time.monotonic()) for _ in range(settings.worker_processes)]
    relay = Relay(database_url=relay_url or db_url, broker=make_broker(redis_url), queue_name=settings.queue_name,
                  lease_seconds=settings.lease_seconds, sweep_interval=settings.sweep_interval_seconds,
                  retention_days=settings.job_retention_days,
                  # Enough to wake every thread of this supervisor at once; actors that find work pass
                  # the nudge on, so threads of other supervisors join too. More would mostly be
                  # nudges that find nothing (each a claim query and two Redis round trips).
                  max_nudges=min(settings.relay_max_nudges, settings.worker_processes * settings.worker_threads),
                  pool_max_nudges=settings.relay_max_nudges)
    def start_relay() -> threading.Thread:
        thread = threading.Thread(target=relay.run, args=(stop,), name="cf-relay", daemon=True)
        thread.start()
        return thread

    relay_thread = start_relay()
    log.info("worker started", processes=settings.worker_processes, threads=settings.worker_threads,
             queue=pool.queue(settings.queue_name), pool=pool.name,
             job_types=list(pool.job_types) if pool.job_types is not None else "all")

    while not stop.wait(0.25):
        if not relay_thread.is_alive() and not stop.is_set():
            # Relay.run restarts itself after an error; this is the last line of defence.
            log.error("relay thread ended; starting it again")
            relay_thread = start_relay()
        for child in children:
            code = child.proc.poll()
            if code is None:
                continue
            lived = time.monotonic() - child.started
            delay = min(2.0 ** child.restarts, 30.0) if lived < CRASH_LOOP_SECONDS else 0.0
            log.warning("worker process exited; starting another", pid=child.proc.pid, exit_code=code,
                        restart_in=delay)
            if metrics_dir:
                _fold_metrics(child.proc.pid, metrics_dir)
            remove_scratch_of_dead_workers(child.proc.pid)  # its downloads and partial outputs
            if delay and stop.wait(delay):
                break
            child.restarts = child.restarts + 1 if lived < CRASH_LOOP_SECONDS else 0
            child.proc = spawn()
            child.started = time.monotonic()

    log.info("stopping: draining worker processes", grace_seconds=settings.shutdown_grace_seconds)
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + settings.shutdown_grace_seconds + 10
    for child in children:
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker process did not stop; killing it", pid=child.proc.pid)
            child.proc.kill()
            child.proc.wait()
    relay_thread.join(5)
    registration.remove()
    if metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("worker stopped")
    return 0


def _fold_metrics(pid: int, metrics_dir: str) -> None:
    """Fold a dead worker process's metric files into the archives (its counts stay counted)."""
    from workers.multiproc import fold_dead_process

    try:
        fold_dead_process(pid, metrics_dir)
    except (OSError, ValueError) as exc:  # a corrupt file must not stop the supervisor
        log.warning("could not fold the metrics of a dead worker process", pid=pid, error=str(exc))
