"""One worker process: a Dramatiq ``Worker`` with N threads running the actor.

Started by the supervisor (``python -m workers.process``) with its settings in the environment.
SIGTERM or SIGINT drains it: no new job is claimed, running jobs get ``shutdown_grace_seconds`` to
finish, and any still running then are released to other workers (``release_job``) before exit.
The process also dies with its supervisor (Linux parent-death signal), so a SIGKILL of
``contentforge worker`` leaves no orphan; its jobs' leases expire and the relay reclaims them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

import dramatiq

from contentforge.errors import ConfigurationError
from contentforge.logging import configure_logging, get_logger
from contentforge.settings import Settings, get_settings
from workers.actors import declare
from workers.broker import make_broker
from workers.middleware import ClearLogContext
from workers.pools import resolve_pool
from workers.runtime import Runtime, configure

log = get_logger(__name__)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the supervisor still stops its children on SIGTERM
        pass


def serve(settings: Settings) -> int:
    if not settings.database_url or not settings.redis_url:
        raise ConfigurationError("a worker process needs DATABASE_URL and REDIS_URL")
    broker = make_broker(settings.redis_url)
    broker.add_middleware(ClearLogContext())
    pool = resolve_pool(settings)
    queue = pool.queue(settings.queue_name)  # this pool's nudges only
    runtime = Runtime(settings, settings.database_url)
    configure(runtime)
    declare(broker, queue)
    worker = dramatiq.Worker(broker, queues={queue}, worker_threads=settings.worker_threads,
                             worker_timeout=settings.worker_poll_ms)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker.start()
    log.info("worker process ready", pid=os.getpid(), threads=settings.worker_threads, queue=queue, pool=pool.name,
             job_types=list(pool.job_types) if pool.job_types is not None else "all")
    stop.wait()

    runtime.stopping.set()
    grace = settings.shutdown_grace_seconds
    log.info("draining", grace_seconds=grace, running=len(runtime.leases.active()))
    stopper = threading.Thread(target=worker.stop, kwargs={"timeout": int(grace * 1000)}, daemon=True)
    stopper.start()
    stopper.join(grace)
    released = runtime.leases.release_all() if stopper.is_alive() else 0
    log.info("worker process stopped", released=released)
    runtime.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads still inside a job are abandoned on purpose: their rows were released above.
    os._exit(0)


def main() -> int:
    _die_with_parent()
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
