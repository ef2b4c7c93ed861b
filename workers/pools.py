"""Worker pools: which job types a worker serves, and how many of each one process runs at once.

- A **pool** is a name and a set of job types. `contentforge worker --pool light` serves a named
  pool (built in: ``light`` = metadata, thumbnail, optimize; ``heavy`` = transcode, transcript;
  more in ``CONTENTFORGE_WORKER_POOLS``), ``--job-types thumbnail,metadata`` an ad-hoc one, and no
  option every job type (the pool ``all``). The claim takes only the pool's types, and each pool
  has its own Dramatiq queue (``<queue_name>-<pool>``; ``all`` keeps ``queue_name``), so a nudge
  only wakes workers that can take the job.
- Each supervisor reports its pool in ``app_private.worker_pools`` every few seconds
  (:class:`PoolRegistration`); the active relay tops up the queue of every pool reported there
  with that pool's ready count, and a job type no live pool serves shows as unserved.
- :class:`TypeGate` applies the per-process limits of ``CONTENTFORGE_WORKER_TYPE_CONCURRENCY``:
  a thread asks the claim only for the types below their limit in its process, with a slot
  reserved during the claim so that two threads never both take the last one.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import uuid
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from contentforge.db import open_connection
from contentforge.errors import ConfigurationError
from contentforge.logging import get_logger
from contentforge.settings import Settings
from jobs import JOB_TYPES
from schema.named_queries import queries

log = get_logger(__name__)

#: The pools every deployment has, unless CONTENTFORGE_WORKER_POOLS redefines a name: quick jobs
#: a new upload waits for, and long CPU-bound ones.
DEFAULT_POOLS: dict[str, tuple[str, ...]] = {
    "light": ("metadata", "thumbnail", "optimize"),
    "heavy": ("transcode", "transcript"),
}
#: The pool of a worker started without one: every job type, on the plain queue_name.
ALL_POOL = "all"
#: How often a supervisor reports its pool, in seconds.
REGISTER_INTERVAL_SECONDS = 5.0
#: A pool not reported for this long is no longer running (three missed reports and some slack).
POOL_STALE_SECONDS = 20.0
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Pool:
    name: str
    #: The job types served; None: every job type (the claim is not narrowed at all).
    job_types: tuple[str, ...] | None

    def queue(self, base: str) -> str:
        """The Dramatiq queue of this pool's nudges."""
        return base if self.job_types is None else f"{base}-{self.name}"


def _types(text: str, what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not names:
        raise ConfigurationError(f"{what}: no job type named")
    unknown = [t for t in names if t not in JOB_TYPES]
    if unknown:
        raise ConfigurationError(f"{what}: unknown job type {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(JOB_TYPES))}")
    return tuple(sorted(names))


def named_pools(text: str) -> dict[str, tuple[str, ...]]:
    """The built-in pools overlaid with ``CONTENTFORGE_WORKER_POOLS`` ("name=type,type;name=type")."""
    pools = {name: tuple(sorted(types)) for name, types in DEFAULT_POOLS.items()}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, types = part.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name) or name == ALL_POOL:
            raise ConfigurationError(f"CONTENTFORGE_WORKER_POOLS: {part!r} is not name=type,type "
                                     f"(a name of lowercase letters, digits, - and _, not {ALL_POOL!r})")
        pools[name] = _types(types, f"CONTENTFORGE_WORKER_POOLS, pool {name}")
    return pools


def resolve_pool(settings: Settings) -> Pool:
    """The pool this worker serves, from --pool / --job-types (or their environment variables)."""
    if settings.worker_pool and settings.worker_job_types:
        raise ConfigurationError("name a pool (--pool) or job types (--job-types), not both")
    pools = named_pools(settings.worker_pools)
    if settings.worker_pool:
        if settings.worker_pool == ALL_POOL:
            return Pool(ALL_POOL, None)
        if settings.worker_pool not in pools:
            raise ConfigurationError(f"unknown pool {settings.worker_pool!r}; pools: {', '.join(sorted(pools))} "
                                     "(CONTENTFORGE_WORKER_POOLS defines more)")
        return Pool(settings.worker_pool, pools[settings.worker_pool])
    if settings.worker_job_types:
        types = _types(settings.worker_job_types, "--job-types")
        # The same types as a named pool share its queue; others get a name of their own.
        for name, pool_types in sorted(pools.items()):
            if pool_types == types:
                return Pool(name, types)
        return Pool("types-" + "-".join(types), types)
    return Pool(ALL_POOL, None)


def type_limits(text: str) -> dict[str, int]:
    """``CONTENTFORGE_WORKER_TYPE_CONCURRENCY`` ("transcode=1,transcript=1") as {type: limit}."""
    limits: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            limit = int(value)
        except ValueError:
            limit = 0
        if not sep or limit < 1:
            raise ConfigurationError(f"CONTENTFORGE_WORKER_TYPE_CONCURRENCY: {part!r} is not type=N with N >= 1")
        _types(name, "CONTENTFORGE_WORKER_TYPE_CONCURRENCY")
        limits[name] = limit
    return limits


# --- per-process limits ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Reservation:
    """What one claim may ask for: ``types`` (None: every type) and the limited slots it holds."""

    types: list[str] | None
    reserved: tuple[str, ...] = ()

    @property
    def nothing(self) -> bool:
        return self.types is not None and not self.types


@dataclass
class TypeGate:
    """The job types a thread of this process may claim now.

    Each limited type has ``limit`` slots per process. A claim reserves a free slot of every
    limited type first (so two threads never both take the last one), asks only for the pool's
    unlimited types and the reserved ones, keeps the slot of the type it got and gives the others
    back. A job's slot is freed when the job ends (:meth:`finished`, idempotent).
    """

    job_types: tuple[str, ...] | None = None
    limits: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        served = self.job_types if self.job_types is not None else tuple(JOB_TYPES)
        self._served = served
        self._limits = {t: n for t, n in self.limits.items() if t in served}
        self._held = dict.fromkeys(self._limits, 0)
        self._jobs: dict[Hashable, str] = {}  # the slot of each claim holding one
        self._lock = threading.Lock()

    def reserve(self) -> Reservation:
        if not self._limits:
            return Reservation(list(self.job_types) if self.job_types is not None else None)
        with self._lock:
            got = tuple(t for t, n in self._limits.items() if self._held[t] < n)
            for t in got:
                self._held[t] += 1
        return Reservation([t for t in self._served if t not in self._limits or t in got], got)

    def settle(self, reservation: Reservation, job_id: Hashable | None, job_type: str | None) -> None:
        """After the claim: keep the slot of the claimed job's type, give the others back (``job_id``:
        what identifies the claim, ``ClaimedJob.slot``)."""
        if not reservation.reserved:
            return
        with self._lock:
            for t in reservation.reserved:
                if job_id is not None and job_type == t:
                    self._jobs[job_id] = t
                else:
                    self._held[t] -= 1

    def finished(self, job_id: Hashable) -> None:
        """The job ended in this process (completed, failed, released, lost): free its slot."""
        if not self._limits:
            return
        with self._lock:
            t = self._jobs.pop(job_id, None)
            if t is not None:
                self._held[t] -= 1

    def running(self) -> dict[str, int]:
        """Slots held per limited type (running jobs, and claims in flight)."""
        with self._lock:
            return dict(self._held)


def process_gate(settings: Settings) -> TypeGate:
    """The gate of one worker process: its pool's types and the per-type limits."""
    return TypeGate(resolve_pool(settings).job_types, type_limits(settings.worker_type_concurrency))


# --- registration --------------------------------------------------------------------------------
class PoolRegistration:
    """Reports this supervisor's pool in ``app_private.worker_pools`` until stopped, then removes it.

    Runs in a thread of its own: a database outage only delays the reports (logged), and the relay
    counts a pool as gone only after POOL_STALE_SECONDS without one.
    """

    def __init__(self, database_url: str, pool: Pool, queue_name: str, threads: int,
                 interval: float = REGISTER_INTERVAL_SECONDS) -> None:
        self.database_url = database_url
        self.pool = pool
        self.queue_name = queue_name
        self.threads = threads
        self.interval = interval
        self.supervisor_id = f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"
        self._conn: psycopg.Connection[Any] | None = None
        self._thread: threading.Thread | None = None

    def _params(self) -> dict[str, Any]:
        return {"supervisor_id": self.supervisor_id, "pool": self.pool.name, "queue_name": self.queue_name,
                "job_types": list(self.pool.job_types) if self.pool.job_types is not None else None,
                "threads": self.threads}

    def report(self) -> bool:
        """Report once; False (logged) when the database could not be reached."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = open_connection(self.database_url, autocommit=True, connect_timeout=5,
                                             application_name="contentforge-supervisor")
            self._conn.execute(queries("queue")["register_worker_pool"], self._params())
            return True
        except (psycopg.Error, OSError) as exc:
            self._close()
            log.warning("could not report the worker pool; retrying", pool=self.pool.name,
                        error=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            return False

    def start(self, stop: threading.Event) -> None:
        self.report()

        def loop() -> None:
            while not stop.wait(self.interval):
                self.report()

        self._thread = threading.Thread(target=loop, name="cf-pool-registration", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        """Remove the report at a clean stop (the relay stops nudging this pool at once)."""
        if self._thread is not None:
            self._thread.join(self.interval + 6)
        with contextlib.suppress(psycopg.Error, OSError):
            if self._conn is None or self._conn.closed:
                self._conn = open_connection(self.database_url, autocommit=True, connect_timeout=5,
                                             application_name="contentforge-supervisor")
            self._conn.execute(queries("queue")["unregister_worker_pool"], {"supervisor_id": self.supervisor_id})
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
