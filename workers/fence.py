"""Self-fencing: a worker that cannot renew a job's lease stops the job before the lease can expire.

The lease on the row runs from when PostgreSQL executed the claim or the last renewal; the worker
cannot see that instant, but it knows when it *sent* the statement, which was earlier. So it counts
on its own monotonic clock from the send time of the last renewal that succeeded (for a new job,
from the send time of its claim) and, ``lease - margin`` seconds after it, stops the job: the
progress callback raises, the job's ffmpeg is killed (:mod:`jobs.stopping`), nothing more is
uploaded and nothing is recorded. Until then the lease may still be valid; after ``lease`` it may
have been given to another worker. The margin covers the fence's own tick and the time it takes to
kill a process; clocks running at slightly different rates are covered too, as long as the margin
is a sizeable share of the lease (the default is a third).

Two threads, so that neither can delay the other:

* the heartbeat (``workers.lease.Leases``) renews every running job's lease every third of
  ``lease - margin`` through a :class:`LeaseRenewer`, whose connection bounds every wait (connect
  timeout, TCP user timeout, statement timeout) by less than the margin: a partitioned TCP
  connection would otherwise hang for many minutes and hold up the renewals of every other job;
* the :class:`SelfFence` watchdog checks the deadlines every quarter of the margin (at most every
  half second) and never talks to the network.

A stopped job is not released (PostgreSQL may be unreachable): its lease expires and the relay
gives it to another worker, whose attempt writes keys of its own (fenced outputs).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import psycopg
import psycopg.errors

from contentforge.db import open_connection
from contentforge.logging import get_logger
from contentforge.settings import Settings
from schema.named_queries import queries

log = get_logger(__name__)

#: Longest pause between two checks of the self-fence, in seconds.
MAX_FENCE_TICK_SECONDS = 0.5


class Fenced(Protocol):
    """What the fence needs of a running job (``workers.lease.ActiveJob``)."""

    last_renewed: float

    @property
    def job_id(self) -> uuid.UUID: ...

    def is_stopped(self) -> bool: ...

    def stop(self, reason: str) -> None: ...


def renew_interval(settings: Settings) -> float:
    """Seconds between two renewal rounds: three tries before the fence's deadline."""
    return (settings.lease_seconds - settings.lease_margin) / 3


def renew_timeout(settings: Settings) -> float:
    """Longest a renewal may wait on the network or the server, in seconds (half the margin)."""
    return settings.lease_margin / 2


def fence_tick(settings: Settings) -> float:
    """How often the fence checks its deadlines."""
    return min(settings.lease_margin / 4, MAX_FENCE_TICK_SECONDS)


def connection_timeouts(seconds: float) -> dict[str, Any]:
    """libpq parameters that bound a connection's waits on the network to about ``seconds``:
    connect timeout (whole seconds, at least 2: libpq's floor), TCP user timeout (unacknowledged
    data; a partition) and keepalives (an idle connection whose peer vanished)."""
    return {"connect_timeout": max(2, math.ceil(seconds)), "tcp_user_timeout": max(1, int(seconds * 1000)),
            "keepalives": 1, "keepalives_idle": max(1, int(seconds)), "keepalives_interval": 1,
            "keepalives_count": 3}


class LeaseRenewer:
    """Renews leases over one connection of its own (the heartbeat thread's), every wait bounded."""

    def __init__(self, url: str, *, lease_seconds: int, timeout_seconds: float) -> None:
        self.url = url
        self.lease_seconds = lease_seconds
        self.timeout_seconds = timeout_seconds
        self._conn: psycopg.Connection[Any] | None = None
        self._sql = queries("queue")["heartbeat"]

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = open_connection(self.url, autocommit=True, application_name="contentforge-heartbeat",
                                         **connection_timeouts(self.timeout_seconds))
        return self._conn

    def renew(self, job_id: uuid.UUID, worker_id: str, progress: int | None) -> bool:
        """Renew one lease: True when still ours, False when not (cancelled, taken over). Any
        failure raises. A connection that turns out broken (the server restarted, the session was
        terminated, a partition) is replaced, and a renewal that failed on an old connection is
        tried once more on the new one: a recycled session must not cost a renewal round."""
        reused = self._conn is not None and not self._conn.closed
        try:
            return self._renew(job_id, worker_id, progress)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            if not reused or isinstance(exc, psycopg.errors.QueryCanceled):
                raise
        return self._renew(job_id, worker_id, progress)

    def _renew(self, job_id: uuid.UUID, worker_id: str, progress: int | None) -> bool:
        try:
            conn = self._connection()
            # One round trip: the statement timeout is local to this transaction (safe through a
            # transaction pooler), and bounds a renewal stuck behind a lock on the server.
            with conn.pipeline(), conn.transaction():
                conn.execute("SELECT set_config('statement_timeout', %s, true)",
                             (f"{max(1, int(self.timeout_seconds * 1000))}ms",))
                cur = conn.execute(self._sql, {"job_id": job_id, "worker_id": worker_id,
                                               "lease_seconds": self.lease_seconds, "progress": progress})
            row = cur.fetchone()
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self.close()  # broken, timed out or cancelled: the next renewal starts on a new connection
            raise
        return bool(row and row["ours"])

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close; it is gone
                conn.close()


class SelfFence:
    """A daemon thread that stops every running job whose lease it could not renew in time."""

    def __init__(self, settings: Settings, running: Callable[[], Iterable[Fenced]]) -> None:
        self.lease = float(settings.lease_seconds)
        self.margin = settings.lease_margin
        self.tick = fence_tick(settings)
        self._running = running
        self._thread = threading.Thread(target=self._loop, name="cf-self-fence", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def deadline(self, job: Fenced) -> float:
        """Monotonic time at which ``job`` is stopped unless its lease is renewed before."""
        return job.last_renewed + self.lease - self.margin

    def check(self, now: float | None = None) -> int:
        """Stop every job past its deadline; return how many were stopped."""
        now = time.monotonic() if now is None else now
        stopped = 0
        for job in self._running():
            if job.is_stopped() or now < self.deadline(job):
                continue
            since = now - job.last_renewed
            job.stop(f"self-fenced: the lease was not renewed for {since:.1f} s "
                     f"(lease {self.lease:g} s, margin {self.margin:g} s)")
            log.warning("job self-fenced: lease not renewed in time; stopped before it could expire",
                        job_id=str(job.job_id), since_renewal=round(since, 3), lease_seconds=self.lease,
                        margin_seconds=self.margin)
            stopped += 1
        return stopped

    def _loop(self) -> None:
        while True:
            time.sleep(self.tick)
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the fence must outlive any error
                log.error("self-fence round failed", error=f"{exc.__class__.__name__}: {exc}".strip())


__all__ = ["Fenced", "LeaseRenewer", "SelfFence", "connection_timeouts", "fence_tick", "renew_interval",
           "renew_timeout"]
