"""Recording a failed job attempt on its row: the readable message, the details, and the retry.

Whether the attempt is retried is decided by ``fail_job`` (SQL: a transient failure with attempts
left goes back to pending), atomically with the row; how long it waits is the backoff of
:func:`workers.claim.retry_delay` from the operator's settings.
"""

from __future__ import annotations

import traceback

from contentforge.errors import DatabaseUnavailable
from workers.claim import ClaimedJob, retry_delay
from workers.job_record import JobRecord
from workers.runtime import Runtime


def record_failure(rt: Runtime, job: ClaimedJob, worker_id: str, record: JobRecord, exc: BaseException, *,
                   transient: bool, unexpected: bool = False) -> None:
    """Fail the attempt (retried later when ``transient`` and attempts are left); set the outcome."""
    message = str(exc).strip() or exc.__class__.__name__
    if unexpected:
        message = f"unexpected error: {exc.__class__.__name__}: {message}"
    details = {"error_class": f"{exc.__class__.__module__}.{exc.__class__.__qualname__}",
               "transient": transient, "attempt": job.attempts,
               "traceback": "".join(traceback.format_exception(exc))[-4000:]}
    delay = retry_delay(job.attempts, rt.settings.retry_base_seconds, rt.settings.retry_max_seconds)
    record.error = message
    try:
        with record.timed("record"):
            status = rt.store.fail(job, worker_id, message, details, transient=transient, retry_delay_seconds=delay)
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
