"""One job's record: its log context, its one summary line and its metrics.

:func:`job_context` binds job_id, asset_id, tenant_id, job_type and attempt to every log line of
one job and writes the job's one summary line (``job finished``) with outcome and timings; it also
counts the job in Prometheus (claimed / completed / failed counters by job type and a duration
histogram, updated by each worker process; multiprocess mode when the supervisor serves them).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter, Histogram

from contentforge.logging import get_logger
from workers.claim import ClaimedJob

log = get_logger("workers.job")

JOBS_CLAIMED = Counter("contentforge_jobs_claimed_total", "Jobs claimed by this worker", ["job_type"])
JOBS_COMPLETED = Counter("contentforge_jobs_completed_total", "Jobs completed", ["job_type"])
JOBS_FAILED = Counter(
    "contentforge_jobs_failed_total",
    "Job attempts that failed (retry: will run again; failed: for good)", ["job_type", "result"],
)
JOB_DURATION = Histogram(
    "contentforge_job_duration_seconds", "Wall time of one job attempt", ["job_type", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600),
)


@dataclass
class JobRecord:
    """What the summary line reports; the actor fills it in as the job advances."""

    outcome: str = "unknown"  # completed | retry | failed | cancelled | lost | released | error
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = round(self.timings.get(step, 0.0) + time.perf_counter() - started, 4)


@contextlib.contextmanager
def job_context(job: ClaimedJob) -> Iterator[JobRecord]:
    """Bind the job's identity to every log line inside; write one summary line at the end."""
    record = JobRecord()
    structlog.contextvars.bind_contextvars(
        job_id=str(job.id), asset_id=str(job.asset_id), tenant_id=str(job.tenant_id),
        job_type=job.job_type, attempt=job.attempts,
    )
    JOBS_CLAIMED.labels(job.job_type).inc()
    started = time.perf_counter()
    try:
        yield record
    finally:
        elapsed = time.perf_counter() - started
        JOB_DURATION.labels(job.job_type, record.outcome).observe(elapsed)
        if record.outcome == "completed":
            JOBS_COMPLETED.labels(job.job_type).inc()
        elif record.outcome in ("retry", "failed"):
            JOBS_FAILED.labels(job.job_type, record.outcome).inc()
        queued = (job.started_at - job.created_at).total_seconds()
        level = "info" if record.outcome in ("completed", "cancelled", "released") else "warning"
        getattr(log, level)(
            "job finished", outcome=record.outcome, error=record.error, duration_s=round(elapsed, 4),
            waited_s=round(queued, 4), **{f"{k}_s": v for k, v in record.timings.items()},
        )
        structlog.contextvars.unbind_contextvars("job_id", "asset_id", "tenant_id", "job_type", "attempt")
