"""The one actor: a nudge means "claim the best ready job and run it".

Nudges carry no job id, so a duplicate, stale or lost nudge can never run a job twice or lose one:
the PostgreSQL row decides (``FOR UPDATE SKIP LOCKED`` in ``claim_job``). After a job the actor
claims again, up to :data:`MAX_JOBS_PER_NUDGE` (then it sends itself one nudge and returns), so a
busy queue does not wait for one message per job; the completion of one job and the claim of the
next are one statement (``complete_and_claim``), one round trip and one commit. For each job it:
claims the row (lease), downloads the original when the job type needs it into the thread's
scratch directory (reused and emptied between jobs), calls :func:`jobs.run_job`, uploads the
outputs to keys of this attempt (:mod:`contentforge.output_keys`), and completes the row and updates
the asset in one transaction.
A per-process heartbeat thread renews every running job's lease three times within
``lease - margin`` and reports its progress; a self-fence thread stops a job whose lease could not
be renewed before ``lease - margin`` (workers.fence); when a heartbeat finds the job no longer
ours (cancelled, or reclaimed after the lease expired) the job's progress callback raises
:class:`JobStopped` (and its ffmpeg is killed) and its result is discarded.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import dramatiq
import redis

from contentforge.db import PREPARED_AFTER_RUNS
from contentforge.errors import DatabaseUnavailable
from contentforge.logging import get_logger
from contentforge.output_keys import output_key
from contentforge.services import storage_url
from contentforge.settings import Settings
from contentforge.storage import Storage, StorageKeyMissing, StorageUnavailable, open_storage
from jobs import JOB_TYPES, JobInterrupted, PermanentJobError, TransientJobError, run_job
from jobs.result import JobResult
from jobs.stopping import StopSignal
from jobs.stopping import bound as stop_signal
from workers.broker import ACTOR_NAME
from workers.claim import AssetUpdate, ClaimedJob, JobStore, retry_delay
from workers.fence import LeaseRenewer, SelfFence, connection_timeouts, renew_interval, renew_timeout
from workers.job_options import media_limits, speech_defaults
from workers.middleware import JobRecord, job_context
from workers.scratch import SCRATCH_PREFIX, remove_scratch_of_dead_workers
from workers.supabase_source import ObjectNotYetReadable, SupabaseSource

log = get_logger(__name__)

#: Jobs one nudge may run back to back before the actor returns (so the message is acked and a
#: shutdown or a higher-priority nudge elsewhere is never held up by one long drain).
MAX_JOBS_PER_NUDGE = 100
#: How long a claim waits for PostgreSQL to come back before the nudge is dropped (the relay's
#: sweep sends a new one once the database answers again).
CLAIM_RECONNECT_SECONDS = 5.0


class JobStopped(JobInterrupted):
    """Raised inside a running job when it is no longer ours: cancelled or lease lost."""


@dataclass(eq=False)
class ActiveJob:
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
    def job_id(self) -> Any:
        return self.job.id

    def is_stopped(self) -> bool:
        return self.stopped.is_set()

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.stopped.set()
        self.signal.stop(reason)

    def report(self, fraction: float) -> None:
        """The job's progress callback: records progress, and stops the job when told to."""
        self.progress = max(0, min(100, int(fraction * 100)))
        if self.stopped.is_set():
            raise JobStopped(self.reason)


class Runtime:
    """Everything the actor needs in one worker process: settings, the row store, storage, the
    heartbeat thread and the set of jobs running in this process."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        # Prepared statements only when the supervisor found DATABASE_URL to be a session ("on"):
        # "auto" left unresolved (a worker started on its own) is the safe "off".
        prepared = settings.worker_prepared_statements == "on"
        self.store = JobStore(database_url, lease_seconds=settings.lease_seconds,
                              prepare_threshold=PREPARED_AFTER_RUNS if prepared else None,
                              connect_options=connection_timeouts(settings.lease_seconds))
        # Self-fencing (workers.fence): renewals on a connection whose waits are bounded, and a
        # watchdog that stops a job whose lease could not be renewed in time.
        self.renewer = LeaseRenewer(database_url, lease_seconds=settings.lease_seconds,
                                    timeout_seconds=renew_timeout(settings))
        self.fence = SelfFence(settings, self.active)
        self.limits = media_limits(settings)
        self.speech = speech_defaults(settings)
        self.stopping = threading.Event()
        self._active: set[ActiveJob] = set()
        self._lock = threading.Lock()
        self._storage: Storage | None = None
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="cf-heartbeat", daemon=True)
        self._heartbeat_started = False
        self._scratch_root: Path | None = None
        self._scratch = threading.local()
        #: Originals uploaded into Supabase Storage (read through its S3 endpoint).
        self.supabase = SupabaseSource(settings, self.store)
        #: Sends one nudge to this process's queue (set by :func:`declare`); None: no re-nudging.
        self.renudge: Callable[[], Any] | None = None

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(storage_url(self.settings))
        return self._storage

    # --- running jobs ----------------------------------------------------------------------
    def add(self, active: ActiveJob) -> None:
        with self._lock:
            self._active.add(active)
            if not self._heartbeat_started:
                self._heartbeat_started = True
                self._heartbeat.start()
                self.fence.start()

    def remove(self, active: ActiveJob) -> None:
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
                self._beat()
            except Exception as exc:  # noqa: BLE001 - the heartbeat must outlive any error
                log.error("heartbeat round failed", error=f"{exc.__class__.__name__}: {exc}".strip())

    def _beat(self) -> None:
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
            active.stop("released at shutdown")
            try:
                if self.store.release(active.job.id, active.worker_id, retry_for=2.0):
                    released += 1
                    log.info("job released at shutdown", job_id=str(active.job.id))
            except DatabaseUnavailable as exc:
                log.warning("could not release job; its lease will expire", job_id=str(active.job.id),
                            error=str(exc))
        return released

    def scratch(self) -> Path:
        """This thread's scratch directory, empty, with an empty ``work`` directory inside.

        Reused from job to job (and emptied after each) instead of a fresh temporary directory per
        job: creating and removing two directories cost more than a whole no-op job's SQL.
        """
        tmp: Path | None = getattr(self._scratch, "dir", None)
        if tmp is None:
            with self._lock:
                if self._scratch_root is None:
                    remove_scratch_of_dead_workers()
                    self._scratch_root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
            tmp = Path(tempfile.mkdtemp(prefix="job-", dir=self._scratch_root))
            (tmp / "work").mkdir()
            self._scratch.dir = tmp
        return tmp

    def clear_scratch(self, tmp: Path) -> None:
        """Empty a scratch directory after a job; a directory that cannot be emptied is dropped
        (the next job of this thread gets a new one)."""
        try:
            for entry in os.scandir(tmp):
                if entry.name == "work" and entry.is_dir(follow_symlinks=False):
                    for inner in os.scandir(entry.path):
                        _remove(inner)
                else:
                    _remove(entry)
        except OSError as exc:
            log.warning("could not empty the job's scratch directory; using a new one", path=str(tmp),
                        error=str(exc))
            self._scratch.dir = None
            shutil.rmtree(tmp, ignore_errors=True)

    def close(self) -> None:
        self.store.close()
        self.renewer.close()
        if self._scratch_root is not None:
            shutil.rmtree(self._scratch_root, ignore_errors=True)


def _remove(entry: os.DirEntry[str]) -> None:
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path)
    else:
        os.unlink(entry.path)


_runtime: Runtime | None = None


def configure(runtime: Runtime) -> None:
    """Set the runtime the actor uses in this process."""
    global _runtime
    _runtime = runtime


def worker_id() -> str:
    """host:pid:thread — unique per worker thread; stored on the row it leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def process_next_job() -> None:
    """The actor: claim and run ready jobs until none is left (or the drain limit, or shutdown).

    Each completion claims the next job in the same statement, so a busy thread makes one round
    trip per job. A nudge that finds work is passed on (one new nudge), so idle threads join a
    backlog one after another and the chain stops at the first thread that finds nothing: the
    relay needs to send only a few nudges, not one per ready job. At the drain limit the actor
    sends one nudge before returning, so that a thread (this one or another) carries on with the
    backlog without waiting for the relay's sweep.
    """
    rt = _runtime
    if rt is None:
        raise RuntimeError("workers.actors.configure() was not called in this process")
    me = worker_id()
    if rt.stopping.is_set():
        return
    try:
        job = rt.store.claim(me, retry_for=CLAIM_RECONNECT_SECONDS)
    except DatabaseUnavailable as exc:
        log.warning("cannot claim: PostgreSQL is unreachable; the nudge is dropped", error=str(exc))
        return
    if job is not None:
        _nudge(rt, "could not pass the nudge on")  # wake one more idle thread: there may be more work
    ran = 0
    while job is not None:
        ran += 1
        claim_next = ran < MAX_JOBS_PER_NUDGE and not rt.stopping.is_set()
        tried, job = _run_and_claim(rt, job, me, claim_next)
        if job is None and claim_next and not tried:
            # The job did not complete (failed, stopped), so no claim rode on it: claim separately.
            try:
                job = rt.store.claim(me, retry_for=CLAIM_RECONNECT_SECONDS)
            except DatabaseUnavailable as exc:
                log.warning("cannot claim: PostgreSQL is unreachable; the nudge is dropped", error=str(exc))
                return
    if ran >= MAX_JOBS_PER_NUDGE:
        _nudge(rt, "could not re-nudge after the drain limit")


def _nudge(rt: Runtime, failure: str) -> None:
    """Send one nudge to this process's queue (a Redis outage only delays: the relay sweeps)."""
    if rt.renudge is None or rt.stopping.is_set():
        return
    try:
        rt.renudge()
    except (redis.RedisError, dramatiq.errors.BrokerError) as exc:
        log.warning(failure, error=str(exc).strip())


def declare(broker: dramatiq.Broker, queue_name: str) -> dramatiq.Actor[[], None]:
    """Register the actor on ``broker`` for ``queue_name`` (one call per broker)."""
    actor = dramatiq.Actor(process_next_job, broker=broker, actor_name=ACTOR_NAME,
                           queue_name=queue_name, priority=0, options={"max_retries": 0})
    if _runtime is not None:
        _runtime.renudge = actor.send
    return actor


# --- one job -------------------------------------------------------------------------------
def run_claimed(rt: Runtime, job: ClaimedJob, me: str) -> str:
    """Run one claimed job to its end and record the outcome on its row; return the outcome."""
    outcome: list[str] = []
    _run_and_claim(rt, job, me, False, outcome)
    return outcome[0]


def _run_and_claim(rt: Runtime, job: ClaimedJob, me: str, claim_next: bool,
                   outcome: list[str] | None = None) -> tuple[bool, ClaimedJob | None]:
    """Run one claimed job and record its outcome; with ``claim_next``, a completion also claims
    the next job. Returns (whether a claim was attempted, the next job or None)."""
    active = ActiveJob(job, me)
    rt.add(active)
    try:
        with job_context(job) as record:
            result = _run(rt, job, active, record, claim_next)
        if outcome is not None:
            outcome.append(record.outcome)
        return result
    finally:
        rt.remove(active)


def _run(rt: Runtime, job: ClaimedJob, active: ActiveJob, record: JobRecord,
         claim_next: bool) -> tuple[bool, ClaimedJob | None]:
    me = active.worker_id
    try:
        tmp = rt.scratch()
        try:
            output, update = _execute(rt, job, tmp, active, record)
        finally:
            rt.clear_scratch(tmp)
        if active.stopped.is_set():
            raise JobStopped(active.reason)
        with record.timed("record"):
            ours, nxt = rt.store.complete(job, me, output, update, claim_next=claim_next)
        record.outcome = "completed" if ours else "lost"
        if not ours:
            record.error = "the job was cancelled or taken over before it finished; result discarded"
        return claim_next, nxt
    except JobStopped as exc:
        record.outcome = "released" if str(exc) == "released at shutdown" else "lost"
        record.error = f"{exc}; result discarded"
    except (PermanentJobError, StorageKeyMissing) as exc:
        _fail(rt, job, me, record, exc, transient=False)
    except (TransientJobError, StorageUnavailable, DatabaseUnavailable, OSError) as exc:
        _fail(rt, job, me, record, exc, transient=True)
    except Exception as exc:  # noqa: BLE001 - a bug or an unexpected library error: retry, bounded by max_attempts
        _fail(rt, job, me, record, exc, transient=True, unexpected=True)
    return False, None


def _fail(rt: Runtime, job: ClaimedJob, me: str, record: JobRecord, exc: BaseException, *,
          transient: bool, unexpected: bool = False) -> None:
    message = str(exc).strip() or exc.__class__.__name__
    if isinstance(exc, StorageKeyMissing):
        message = f"the asset's original file is missing from storage: {message}"
    elif unexpected:
        message = f"unexpected error: {exc.__class__.__name__}: {message}"
    details = {"error_class": f"{exc.__class__.__module__}.{exc.__class__.__qualname__}",
               "transient": transient, "attempt": job.attempts,
               "traceback": "".join(traceback.format_exception(exc))[-4000:]}
    delay = retry_delay(job.attempts, rt.settings.retry_base_seconds, rt.settings.retry_max_seconds)
    record.error = message
    try:
        with record.timed("record"):
            status = rt.store.fail(job, me, message, details, transient=transient, retry_delay_seconds=delay)
    except DatabaseUnavailable as db_exc:
        record.outcome = "error"
        record.error = f"{message} (not recorded: {db_exc}; the lease will expire and the job rerun)"
        return
    if status == "pending":
        record.outcome = "retry"
        record.timings["retry_in"] = round(delay, 3)
    elif status == "failed":
        record.outcome = "failed"
    else:
        record.outcome = "lost"


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _execute(rt: Runtime, job: ClaimedJob, tmp: Path, active: ActiveJob,
             record: JobRecord) -> tuple[dict[str, Any], AssetUpdate | None]:
    spec = JOB_TYPES.get(job.job_type)
    if spec is None:
        raise PermanentJobError(f"this worker has no job function for {job.job_type!r}; "
                                f"known: {', '.join(sorted(JOB_TYPES))}")
    source: Path | None = None
    if spec.needs_source:
        asset = rt.store.asset(job)
        if asset is None:
            raise PermanentJobError(f"asset {job.asset_id} no longer exists")
        suffix = PurePosixPath(asset["original_filename"] or "").suffix[:16]
        source = tmp / f"source{suffix}"
        with record.timed("download"):
            # An original uploaded into Supabase Storage is read from there (a worker without the S3
            # endpoint fails it as transient), never from our store under the object's name.
            ingested = rt.supabase.object_for(asset)
            if ingested is None:
                rt.storage.get_file(asset["storage_path"], source)
            else:
                try:
                    rt.supabase.bucket(ingested["bucket_id"]).get_file(ingested["object_name"], source)
                except StorageKeyMissing as exc:
                    raise ObjectNotYetReadable(
                        f"Supabase Storage object {ingested['bucket_id']}/{ingested['object_name']} "
                        "is not readable yet") from exc
    workdir = tmp / "work"
    with record.timed("run"), stop_signal(active.signal):
        try:
            result: JobResult = run_job(job.job_type, source, workdir, dict(job.params), rt.limits,
                                        active.report, allow_test_jobs=rt.settings.allow_test_jobs,
                                        speech=rt.speech)
        except JobInterrupted:
            if active.stopped.is_set():  # ffmpeg killed by the stop (jobs.stopping)
                raise JobStopped(active.reason) from None
            raise
    if active.stopped.is_set():
        raise JobStopped(active.reason)

    variants: dict[str, Any] = {}
    outputs: list[dict[str, Any]] = []
    with record.timed("upload"):
        for out in result.outputs:
            # Fenced outputs: this attempt's own keys; the completing transaction decides whether the
            # asset points at them. A stopped job (lease lost or self-fenced) uploads nothing more.
            if active.stopped.is_set():
                raise JobStopped(active.reason)
            if job.claim_token is None:
                raise RuntimeError("the claim returned no claim_token: migration 0021 is not applied")
            key = output_key(job.tenant_id, job.asset_id, job.claim_token, out.name)
            rt.storage.put_file(key, out.path, out.content_type)
            entry = {"key": key, "format": out.format, "width": out.width, "height": out.height,
                     "bytes": out.bytes, "content_type": out.content_type}
            variants[out.name] = entry
            outputs.append({"name": out.name, **entry})
    data = _json_safe(dict(result.data))
    output = {**data, "outputs": outputs}

    metadata: dict[str, Any] = data if job.job_type == "metadata" else {}
    duration = data.get("duration") if job.job_type == "metadata" else None
    transcript = (data.get("text"), data.get("language")) if job.job_type == "transcript" else None
    if not variants and not metadata and transcript is None:
        return output, None
    return output, AssetUpdate(
        variants=variants, metadata=metadata,
        duration_seconds=float(duration) if isinstance(duration, (int, float)) else None,
        transcript=transcript,
    )


__all__ = ["ActiveJob", "JobStopped", "Runtime", "configure", "declare", "process_next_job", "run_claimed",
           "worker_id"]
