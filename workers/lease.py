"""A running job's lease: held while the job runs, renewed by a heartbeat, given back at shutdown.

A claim gives this worker thread the job's lease for ``lease_seconds``. :class:`Leases` keeps the
jobs running in one worker process and a heartbeat thread that renews each lease every
``lease_seconds / 3`` and reports the job's progress. When a heartbeat finds a job no longer ours
(cancelled, or reclaimed by the relay after the lease expired) the job is stopped: its progress
callback raises :class:`JobStopped`, and its result is discarded.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from contentforge.errors import DatabaseUnavailable
from contentforge.logging import get_logger
from jobs import JobInterrupted
from workers.claim import ClaimedJob, JobStore

log = get_logger(__name__)

#: The reason of a job given back by :meth:`Leases.release_all` (its outcome is then "released").
RELEASED_AT_SHUTDOWN = "released at shutdown"


class JobStopped(JobInterrupted):
    """Raised inside a running job when it is no longer ours: cancelled or lease lost."""


@dataclass(eq=False)
class ActiveJob:
    """A job this process runs, with the state the heartbeat shares with the job's thread."""

    job: ClaimedJob
    worker_id: str
    progress: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    last_renewed: float = field(default_factory=time.monotonic)

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.stopped.set()

    def check(self) -> None:
        """Raise :class:`JobStopped` when the job is no longer ours."""
        if self.stopped.is_set():
            raise JobStopped(self.reason)

    def report(self, fraction: float) -> None:
        """The job's progress callback: records progress, and stops the job when told to."""
        self.progress = max(0, min(100, int(fraction * 100)))
        self.check()


class Leases:
    """The jobs running in one worker process and the heartbeat thread that renews their leases."""

    def __init__(self, store: JobStore, lease_seconds: float) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self._active: set[ActiveJob] = set()
        self._lock = threading.Lock()
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="cf-heartbeat", daemon=True)
        self._heartbeat_started = False

    @contextlib.contextmanager
    def hold(self, job: ClaimedJob, worker_id: str) -> Iterator[ActiveJob]:
        """Keep ``job``'s lease renewed while the block runs (the heartbeat starts with the first job)."""
        active = ActiveJob(job, worker_id)
        with self._lock:
            self._active.add(active)
            if not self._heartbeat_started:
                self._heartbeat_started = True
                self._heartbeat.start()
        try:
            yield active
        finally:
            self.store.finished(job)  # frees its per-type slot in this process, whatever the outcome
            with self._lock:
                self._active.discard(active)

    def active(self) -> list[ActiveJob]:
        with self._lock:
            return list(self._active)

    def _heartbeat_loop(self) -> None:
        """Renew every running job's lease until the process ends.

        No exception ends this thread: a failed renewal (PostgreSQL unreachable, a statement
        timeout, a read-only standby after a failover, a bug) is logged and retried at the next
        beat, and a job is stopped only once its lease can no longer have been renewed (its last
        renewal is older than the lease), when another worker may already be running it.
        """
        interval = self.lease_seconds / 3
        while True:
            time.sleep(interval)
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - the heartbeat must outlive any error
                log.error("heartbeat round failed", error=f"{exc.__class__.__name__}: {exc}".strip())

    def beat(self) -> None:
        """Renew the lease of every running job once; stop the jobs that are no longer ours."""
        for active in self.active():
            if active.stopped.is_set():
                continue
            try:
                ours = self.store.heartbeat(active.job.id, active.worker_id, active.progress)
            except Exception as exc:  # noqa: BLE001 - logged; the job stops only when its lease is gone
                if time.monotonic() - active.last_renewed > self.lease_seconds:
                    active.stop(f"the lease expired while it could not be renewed ({exc.__class__.__name__})")
                log.warning("heartbeat failed", job_id=str(active.job.id),
                            error=f"{exc.__class__.__name__}: {str(exc).strip()}")
                continue
            if ours:
                active.last_renewed = time.monotonic()
            else:
                active.stop("the job was cancelled or its lease was taken over")

    def release_all(self) -> int:
        """Give every running job of this process back to the queue (shutdown after the grace)."""
        released = 0
        for active in self.active():
            active.stop(RELEASED_AT_SHUTDOWN)
            try:
                if self.store.release(active.job.id, active.worker_id, retry_for=2.0):
                    released += 1
                    log.info("job released at shutdown", job_id=str(active.job.id))
            except DatabaseUnavailable as exc:
                log.warning("could not release job; its lease will expire", job_id=str(active.job.id),
                            error=str(exc))
        return released
