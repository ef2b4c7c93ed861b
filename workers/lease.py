"""A running job's lease: held while the job runs, renewed by a heartbeat, given back at shutdown.

A claim gives this worker thread the job's lease for ``lease_seconds``. :class:`Leases` keeps the
jobs running in one worker process, a heartbeat thread that renews each lease three times within
``lease - margin`` (through :class:`workers.fence.LeaseRenewer`, whose waits are bounded) and
reports the job's progress, and the self-fence (:class:`workers.fence.SelfFence`), which stops a
job whose lease could not be renewed before ``lease - margin`` since the send time of its last
successful renewal. When a heartbeat finds a job no longer ours (cancelled, or reclaimed by the
relay after the lease expired) the job is stopped too: its progress callback raises
:class:`JobStopped`, its ffmpeg is killed (:mod:`jobs.stopping`), and its result is discarded.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from contentforge.errors import DatabaseUnavailable
from contentforge.logging import get_logger
from contentforge.settings import Settings
from jobs import JobInterrupted
from jobs.stopping import StopSignal
from workers.claim import ClaimedJob, JobStore
from workers.fence import LeaseRenewer, SelfFence, renew_interval

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
    #: Monotonic send time of the last renewal that succeeded (at first: of the claim); the
    #: self-fence stops the job at lease - margin after it (workers.fence).
    last_renewed: float = 0.0
    #: Kills the job's ffmpeg when the job is stopped, even if it reports no progress.
    signal: StopSignal = field(default_factory=StopSignal)

    def __post_init__(self) -> None:
        if not self.last_renewed:
            self.last_renewed = self.job.lease_from or time.monotonic()

    @property
    def job_id(self) -> uuid.UUID:
        return self.job.id

    def is_stopped(self) -> bool:
        return self.stopped.is_set()

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.stopped.set()
        self.signal.stop(reason)

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

    def __init__(self, store: JobStore, settings: Settings, renewer: LeaseRenewer) -> None:
        self.store = store
        self.settings = settings
        self.renewer = renewer
        self.fence = SelfFence(settings, self.active)
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
                self.fence.start()
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

        No exception ends this thread: a failed renewal (PostgreSQL unreachable, a timeout, a
        read-only standby after a failover, a bug) is logged and retried at the next beat. Renewals
        run three times within lease - margin, and each is bounded by less than the margin; a job
        whose lease could not be renewed in time is stopped by the self-fence (workers.fence).
        """
        interval = renew_interval(self.settings)
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
            sent = time.monotonic()  # the renewed lease runs from no earlier than this
            try:
                ours = self.renewer.renew(active.job.id, active.worker_id, active.progress)
            except Exception as exc:  # noqa: BLE001 - logged; the self-fence stops the job in time
                log.warning("heartbeat failed", job_id=str(active.job.id),
                            error=f"{exc.__class__.__name__}: {str(exc).strip()}")
                continue
            if ours:
                active.last_renewed = sent
            else:
                active.stop("the job was cancelled or its lease was taken over")

    def release_all(self) -> int:
        """Give every running job of this process back to the queue (shutdown after the grace)."""
        released = 0
        for active in self.active():
            if active.stopped.is_set():  # lost, cancelled or self-fenced: not ours to release
                continue
            active.stop(RELEASED_AT_SHUTDOWN)
            try:
                if self.store.release(active.job.id, active.worker_id, retry_for=2.0):
                    released += 1
                    log.info("job released at shutdown", job_id=str(active.job.id))
            except DatabaseUnavailable as exc:
                log.warning("could not release job; its lease will expire", job_id=str(active.job.id),
                            error=str(exc))
        return released

    def close(self) -> None:
        self.renewer.close()
