"""The one actor: a nudge means "claim the best ready job and run it".

Nudges carry no job id, so a duplicate, stale or lost nudge can never run a job twice or lose one:
the PostgreSQL row decides (``FOR UPDATE SKIP LOCKED`` in ``claim_job``). For each job the actor
claims the row (its lease, kept by :mod:`workers.lease`), downloads the original into the thread's
scratch directory, runs the job function (:mod:`jobs`), uploads the outputs to deterministic keys,
and completes the row and writes the job's :class:`jobs.AssetFields` to the asset in one
transaction. The completion claims the next job in the same statement, up to
:data:`MAX_JOBS_PER_NUDGE` (then the actor sends itself one nudge and returns), so a busy queue
does not wait for one message per job. The rest of the process is :class:`workers.runtime.Runtime`.
Outputs go to keys of this attempt (:mod:`contentforge.output_keys`); the completing transaction
makes them the asset's only while the claim is still ours. The lease is renewed, and a job whose
lease could not be renewed in time is stopped (its ffmpeg killed) by the self-fence
(:mod:`workers.fence`), before another worker could have taken it.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import dramatiq

from contentforge.errors import DatabaseUnavailable, PermanentError, TransientError
from contentforge.logging import get_logger
from contentforge.output_keys import output_key
from jobs import JobInput, JobInterrupted, PermanentJobError, job_spec
from jobs.stopping import bound as stop_signal
from workers.broker import ACTOR_NAME
from workers.claim import AssetUpdate, ClaimedJob
from workers.failure import record_failure
from workers.job_record import JobRecord, job_context
from workers.lease import RELEASED_AT_SHUTDOWN, ActiveJob, JobStopped
from workers.runtime import Runtime, configured, current, worker_id

log = get_logger(__name__)

#: Jobs one nudge may run back to back before the actor returns (so the message is acked and a
#: shutdown or a higher-priority nudge elsewhere is never held up by one long drain).
MAX_JOBS_PER_NUDGE = 100
#: How long a claim waits for PostgreSQL to come back before the nudge is dropped (the relay's
#: sweep sends a new one once the database answers again).
CLAIM_RECONNECT_SECONDS = 5.0


def process_next_job() -> None:
    """The actor: claim and run ready jobs until none is left (or the drain limit, or shutdown).

    A nudge that finds work is passed on (one new nudge), so idle threads join a backlog one after
    another and the chain stops at the first thread that finds nothing: the relay sends a few
    nudges, not one per ready job. At the drain limit the actor sends one nudge before returning.
    """
    rt, me = current(), worker_id()
    job = None if rt.stopping.is_set() else _claim(rt, me)
    if job is not None:
        rt.nudge("could not pass the nudge on")  # wake one more idle thread: there may be more work
    ran = 0
    while job is not None:
        ran += 1
        claim_next = ran < MAX_JOBS_PER_NUDGE and not rt.stopping.is_set()
        _, completed, job = _run_and_claim(rt, job, me, claim_next)
        if job is None and claim_next and not completed:  # no claim rode on a completion
            job = _claim(rt, me)
    if ran >= MAX_JOBS_PER_NUDGE:
        rt.nudge("could not re-nudge after the drain limit")


def _claim(rt: Runtime, me: str) -> ClaimedJob | None:
    try:
        return rt.store.claim(me, retry_for=CLAIM_RECONNECT_SECONDS)
    except DatabaseUnavailable as exc:
        log.warning("cannot claim: PostgreSQL is unreachable; the nudge is dropped", error=str(exc))
        return None


def declare(broker: dramatiq.Broker, queue_name: str) -> dramatiq.Actor[[], None]:
    """Register the actor on ``broker`` for ``queue_name`` (one call per broker)."""
    actor = dramatiq.Actor(process_next_job, broker=broker, actor_name=ACTOR_NAME,
                           queue_name=queue_name, priority=0, options={"max_retries": 0})
    if (rt := configured()) is not None:
        rt.renudge = actor.send
    return actor


def run_claimed(rt: Runtime, job: ClaimedJob, me: str) -> str:
    """Run one claimed job to its end and record the outcome on its row; return the outcome."""
    return _run_and_claim(rt, job, me, False)[0]


def _run_and_claim(rt: Runtime, job: ClaimedJob, me: str,
                   claim_next: bool) -> tuple[str, bool, ClaimedJob | None]:
    """Run one claimed job and record its outcome; with ``claim_next``, a completion also claims
    the next job. Returns (outcome, whether it completed, the next job or None)."""
    with rt.leases.hold(job, me) as active, job_context(job) as record:
        try:
            with rt.scratch.job_dir() as tmp:
                output, update = _execute(rt, job, tmp, active, record)
            active.check()
            with record.timed("record"):
                ours, nxt = rt.store.complete(job, me, output, update, claim_next=claim_next)
            record.outcome = "completed" if ours else "lost"
            if not ours:
                record.error = "the job was cancelled or taken over before it finished; result discarded"
            return record.outcome, True, nxt
        except JobStopped as exc:
            record.outcome = "released" if str(exc) == RELEASED_AT_SHUTDOWN else "lost"
            record.error = f"{exc}; result discarded"
        except PermanentError as exc:  # the error tree: contentforge.errors
            record_failure(rt, job, me, record, exc, transient=False)
        except (TransientError, OSError) as exc:
            record_failure(rt, job, me, record, exc, transient=True)
        except Exception as exc:  # noqa: BLE001 - a bug or an unexpected library error: retry, bounded by max_attempts
            record_failure(rt, job, me, record, exc, transient=True, unexpected=True)
        return record.outcome, False, None


def _execute(rt: Runtime, job: ClaimedJob, tmp: Path, active: ActiveJob,
             record: JobRecord) -> tuple[dict[str, Any], AssetUpdate | None]:
    """Download, run, upload; returns the row's output and what the asset gets."""
    if job.claim_token is None:  # no key of this attempt could be written
        raise RuntimeError("the claim returned no claim_token: migration 0021 is not applied")
    spec = job_spec(job.job_type)
    source: Path | None = None
    if spec.needs_source:
        asset = rt.store.asset(job)
        if asset is None:
            raise PermanentJobError(f"asset {job.asset_id} no longer exists")
        source = tmp / f"source{PurePosixPath(asset['original_filename'] or '').suffix[:16]}"
        with record.timed("download"):
            rt.download_original(asset, source)
    inp = JobInput(source, tmp / "work", dict(job.params), rt.limits, active.report, speech=rt.speech,
                   allow_test_jobs=rt.settings.allow_test_jobs)
    with record.timed("run"), stop_signal(active.signal):
        try:
            result = spec.run(inp)
        except JobInterrupted:
            active.check()  # ffmpeg killed by the stop (jobs.stopping): JobStopped, not a failure
            raise
    active.check()
    variants: dict[str, Any] = {}
    with record.timed("upload"):
        for out in result.outputs:
            # Fenced outputs: this attempt's own keys; the completing transaction decides whether the
            # asset points at them. A stopped job (lease lost or self-fenced) uploads nothing more.
            if active.stopped.is_set():
                raise JobStopped(active.reason)
            key = output_key(job.tenant_id, job.asset_id, job.claim_token, out.name)
            rt.storage.put_file(key, out.path, out.content_type)
            variants[out.name] = {"key": key, "format": out.format, "width": out.width, "height": out.height,
                                  "bytes": out.bytes, "content_type": out.content_type}
    output = {**_json_safe(result.data), "outputs": [{"name": n, **v} for n, v in variants.items()]}
    fields = result.asset
    if not variants and not fields.metadata and fields.transcript is None:
        return output, None
    return output, AssetUpdate(variants=variants, metadata=_json_safe(fields.metadata),
                               duration_seconds=fields.duration_seconds, transcript=fields.transcript)


#: Value types that JSON keeps as they are: a mapping of only these needs no round trip.
_JSON_PLAIN = frozenset({str, int, float, bool, type(None)})


def _json_safe(value: Any) -> dict[str, Any]:
    """``value`` as JSON would give it back (anything else as its ``str``); a flat mapping of plain
    values (a no-op job's result) is copied without the round trip."""
    plain = dict(value)
    if all(type(k) is str and type(v) in _JSON_PLAIN for k, v in plain.items()):
        return plain
    return json.loads(json.dumps(plain, default=str))


__all__ = ["declare", "process_next_job", "run_claimed"]
