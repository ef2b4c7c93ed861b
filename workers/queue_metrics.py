"""Queue metrics read from PostgreSQL at scrape time (served by the supervisor)."""

from __future__ import annotations

from collections.abc import Iterator

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

    def __init__(self, url: str) -> None:
        self.url = url

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "contentforge_queue_jobs",
            f"Jobs in the queue table by status: pending and running exact up to {QUEUE_DEPTH_EXACT_LIMIT}, "
            "completed, failed and cancelled estimated from the planner statistics",
            labels=["status"])
        oldest = GaugeMetricFamily("contentforge_queue_oldest_pending_seconds",
                                   "Age of the oldest pending job that is ready to run")
        try:
            with connect(self.url, autocommit=True, connect_timeout=5) as conn:
                counts = {r["status"]: r["jobs"] for r in conn.execute(
                    queries("queue")["queue_depth"], {"limit": QUEUE_DEPTH_EXACT_LIMIT}).fetchall()}
                row = conn.execute(queries("queue")["oldest_pending_age"]).fetchone()
        except Exception as exc:  # noqa: BLE001 - a scrape must not crash the worker; report nothing this time
            log.warning("queue metrics unavailable", error=str(exc).strip())
            return
        for status in ("pending", "running", "completed", "failed", "cancelled"):
            depth.add_metric([status], counts.get(status, 0))
        oldest.add_metric([], row["seconds"] if row else 0.0)
        yield depth
        yield oldest
