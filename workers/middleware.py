"""Cross-cutting behaviour of the workers: per-job log context, one summary line, metrics.

- :class:`ClearLogContext` (a Dramatiq middleware) clears structlog's context before and after
  every nudge, so nothing leaks from one job to the next on a worker thread.
- :func:`job_context` binds job_id, asset_id, tenant_id, job_type and attempt to every log line
  of one job and writes the job's one summary line (``job finished``) with outcome and timings.
- Prometheus metrics: claimed / completed / failed counters by job type and a duration
  histogram, updated by each worker process (multiprocess mode when the supervisor serves them),
  and :class:`QueueCollector`, read at scrape time from PostgreSQL: jobs by status and the age of
  the oldest ready pending job; on a supervisor also each pool's backlog (the scaling signal) and
  per job type the ready jobs and the number of running pools that serve it (0: unserved).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import structlog
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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


class ClearLogContext(dramatiq.Middleware):
    """Start and end every message with an empty structlog context."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        structlog.contextvars.clear_contextvars()

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        structlog.contextvars.clear_contextvars()


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


#: Pending and running jobs counted exactly per scrape, up to this many each: a bounded index
#: scan (a few ms), so a scrape stays cheap with millions of rows in the table.
QUEUE_DEPTH_EXACT_LIMIT = 100_000


class QueueCollector(Collector):
    """Queue depth by status and the oldest ready job's age, read from PostgreSQL per scrape.

    Pending and running are exact up to :data:`QUEUE_DEPTH_EXACT_LIMIT`; completed, failed and
    cancelled are planner estimates (see ``queue_depth`` in ``schema/queries/queue.sql``).
    """

    def __init__(self, url: str, pools: Mapping[str, Sequence[str] | None] | None = None,
                 stale_seconds: float = 20.0) -> None:
        self.url = url
        #: Pools whose backlog is reported even with no worker running (an autoscaler starts the
        #: first one); the pools reported by running supervisors are added at each scrape.
        self.pools = dict(pools) if pools is not None else None
        self.stale_seconds = stale_seconds

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from contentforge.db import connect
        from schema.named_queries import queries

        depth = GaugeMetricFamily(
            "contentforge_queue_jobs",
            f"Jobs in the queue table by status: pending and running exact up to {QUEUE_DEPTH_EXACT_LIMIT}, "
            "completed, failed and cancelled estimated from the planner statistics",
            labels=["status"])
        oldest = GaugeMetricFamily("contentforge_queue_oldest_pending_seconds",
                                   "Age of the oldest pending job that is ready to run")
        q = queries("queue")
        backlog: dict[str, Any] = {}
        types: list[dict[str, Any]] = []
        try:
            with connect(self.url, autocommit=True, connect_timeout=5) as conn:
                counts = {r["status"]: r["jobs"] for r in conn.execute(
                    q["queue_depth"], {"limit": QUEUE_DEPTH_EXACT_LIMIT}).fetchall()}
                row = conn.execute(q["oldest_pending_age"]).fetchone()
                if self.pools is not None:
                    pools = dict(self.pools)
                    for r in conn.execute(q["reported_worker_pools"], {"stale_seconds": self.stale_seconds}):
                        pools.setdefault(r["pool"], r["job_types"])
                    for name, job_types in sorted(pools.items()):
                        backlog[name] = conn.execute(q["pool_backlog"], {
                            "job_types": list(job_types) if job_types is not None else None}).fetchone()
                    types = conn.execute(q["job_type_stats"], {"stale_seconds": self.stale_seconds}).fetchall()
        except Exception as exc:  # noqa: BLE001 - a scrape must not crash the worker; report nothing this time
            log.warning("queue metrics unavailable", error=str(exc).strip())
            return
        for status in ("pending", "running", "completed", "failed", "cancelled"):
            depth.add_metric([status], counts.get(status, 0))
        oldest.add_metric([], row["seconds"] if row else 0.0)
        yield depth
        yield oldest
        if self.pools is None:
            return
        ready = GaugeMetricFamily("contentforge_pool_ready_jobs",
                                  "Jobs of the pool's types that are pending, due and not paused "
                                  "(app_private.pool_backlog)", labels=["pool"])
        age = GaugeMetricFamily("contentforge_pool_oldest_ready_seconds",
                                "Age of the pool's oldest ready job (0 when none)", labels=["pool"])
        for name, b in backlog.items():
            ready.add_metric([name], b["ready"])
            age.add_metric([name], b["oldest_ready_seconds"])
        type_ready = GaugeMetricFamily("contentforge_job_type_ready_jobs",
                                       "Ready jobs of the type (pending, due, not paused)", labels=["job_type"])
        serving = GaugeMetricFamily("contentforge_job_type_serving_pools",
                                    "Running pools that serve the job type; 0: no running worker takes it",
                                    labels=["job_type"])
        for t in types:
            type_ready.add_metric([t["job_type"]], t["ready"])
            serving.add_metric([t["job_type"]], len(t["pools"]))
        yield ready
        yield age
        yield type_ready
        yield serving
