"""Queue metrics read from PostgreSQL at scrape time (served by the supervisor).

Jobs by status and the age of the oldest ready pending job; on a supervisor also each pool's
backlog (the scaling signal) and per job type the ready jobs and the number of running pools that
serve it (0: unserved).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from contentforge.db import connect
from contentforge.logging import get_logger
from schema.named_queries import queries

log = get_logger(__name__)

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
