"""One job's record: its log context, its one summary line and its metrics.

:func:`job_context` binds job_id, asset_id, tenant_id, job_type and attempt to every log line of
one job and writes the job's one summary line (``job finished``) with outcome and timings; it also
counts the job in Prometheus (claimed / completed / failed counters by job type and a duration
histogram, updated by each worker process; multiprocess mode when the supervisor serves them).
This runs for every job, so the summary line is built only when its level is enabled, and the
metrics' labelled children are looked up once per process.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import Counter, Histogram

from contentforge.logging import enabled, get_logger
from workers.claim import ClaimedJob

LOGGER_NAME = "workers.job"
log = get_logger(LOGGER_NAME)
#: Outcomes whose summary line is written at INFO (the others at WARNING).
ROUTINE_OUTCOMES = frozenset({"completed", "cancelled", "released"})

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

    def timed(self, step: str) -> _Timed:
        """A block whose wall time is added to ``timings[step]``."""
        return _Timed(self.timings, step)


class _Timed:
    """The context manager of :meth:`JobRecord.timed` (a class: a few blocks per job, every job)."""

    __slots__ = ("started", "step", "timings")

    def __init__(self, timings: dict[str, float], step: str) -> None:
        self.timings = timings
        self.step = step
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.started
        self.timings[self.step] = round(self.timings.get(self.step, 0.0) + elapsed, 4)


#: Labelled metric children, looked up once per label values instead of once per job
#: (``labels()`` validates and locks on every call; the children live as long as the process).
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


@contextlib.contextmanager
def job_context(job: ClaimedJob) -> Iterator[JobRecord]:
    """Bind the job's identity to every log line inside; write one summary line at the end."""
    record = JobRecord()
    structlog.contextvars.bind_contextvars(
        job_id=str(job.id), asset_id=str(job.asset_id), tenant_id=str(job.tenant_id),
        job_type=job.job_type, attempt=job.attempts,
    )
    _child(JOBS_CLAIMED, job.job_type).inc()
    started = time.perf_counter()
    try:
        yield record
    finally:
        elapsed = time.perf_counter() - started
        outcome = record.outcome
        _child(JOB_DURATION, job.job_type, outcome).observe(elapsed)
        if outcome == "completed":
            _child(JOBS_COMPLETED, job.job_type).inc()
        elif outcome in ("retry", "failed"):
            _child(JOBS_FAILED, job.job_type, outcome).inc()
        level = logging.INFO if outcome in ROUTINE_OUTCOMES else logging.WARNING
        # The line is built only when it will be written (a busy queue at WARNING skips it).
        if enabled(LOGGER_NAME, level):
            queued = (job.started_at - job.created_at).total_seconds()
            log.log(level, "job finished", outcome=outcome, error=record.error, duration_s=round(elapsed, 4),
                    waited_s=round(queued, 4), **{f"{k}_s": v for k, v in record.timings.items()})
        structlog.contextvars.unbind_contextvars("job_id", "asset_id", "tenant_id", "job_type", "attempt")
