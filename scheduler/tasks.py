"""The scheduler's tasks: plain functions, each bounded and safe to run twice.

Each takes a :class:`TaskContext` and returns a :class:`TaskResult`. They call the SQL functions
of the schema (``schema/queries/scheduler.sql``); the nightly task also removes stored files and
runs VACUUM/ANALYZE as top-level statements, which no SQL function can do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import psycopg
from psycopg import sql

from contentforge.db import one
from contentforge.logging import get_logger
from contentforge.settings import Settings
from schema.named_queries import queries

#: ``assets.storage_bucket`` of originals kept in contentforge's own store (STORAGE_URL).
OWN_BUCKET = "assets"

log = get_logger("contentforge.scheduler")

#: Tables whose rows churn the most; the nightly task vacuums and analyzes them. Engagement is
#: handled by month (see _engagement_partitions_to_vacuum): ANALYZE of the partitioned parent reads
#: every partition (2.2 s on 1 M rows), so the partitions task does it only when partitions change.
HIGH_CHURN_TABLES = ("editing_sessions", "content_changes", "asset_processing_jobs")
#: Rows each bounded step handles per call; steps loop until done or MAX_BATCHES.
BATCH = 1000
#: Longest wait for the lock that detaching an expired partition needs.
DETACH_LOCK_TIMEOUT = "5s"
#: Upper bound of batches per step and run, so one run never holds the scheduler for long.
MAX_BATCHES = 100


@dataclass
class TaskContext:
    conn: psycopg.Connection[Any]  # autocommit, dict rows
    settings: Settings
    storage_url: str

    @cached_property
    def storage(self) -> Any:
        from contentforge.storage import open_storage

        return open_storage(self.storage_url)


@dataclass
class TaskResult:
    rows: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def _q(name: str) -> Any:
    return queries("scheduler")[name]


def _one(conn: psycopg.Connection[Any], name: str, **params: Any) -> dict[str, Any]:
    return one(conn, _q(name), params)


def _drain(conn: psycopg.Connection[Any], name: str, column: str, **params: Any) -> int:
    """Call a bounded SQL step until it reports less than a full batch."""
    total = 0
    for _ in range(MAX_BATCHES):
        n = _one(conn, name, **params)[column]
        total += n
        if n < params.get("batch", BATCH):
            break
    return total


def publish(ctx: TaskContext) -> TaskResult:
    """Publish content whose scheduled time has passed; archive content whose unpublish time has."""
    published = archived = 0
    for _ in range(MAX_BATCHES):
        row = _one(ctx.conn, "publish_due", batch=BATCH)
        published += row["published"]
        archived += row["archived"]
        if row["published"] < BATCH and row["archived"] < BATCH:
            break
    return TaskResult(published + archived, {"published": published, "archived": archived})


def partitions(ctx: TaskContext) -> TaskResult:
    """Keep monthly engagement partitions ahead, drop expired ones, and report default-partition rows."""
    created = [r["partition_name"] for r in ctx.conn.execute(
        _q("ensure_partitions"), {"months_ahead": ctx.settings.partition_months_ahead}) if r["created"]]
    dropped = []
    for r in ctx.conn.execute(_q("expired_partitions"),
                              {"retention_months": ctx.settings.engagement_retention_months}).fetchall():
        name = sql.Identifier(r["partition_name"])
        # DETACH ... CONCURRENTLY is refused while a default partition exists, so detach plainly:
        # the ACCESS EXCLUSIVE lock on the parent lasts a catalog update, and lock_timeout makes
        # the step give up (and retry next run) rather than queue writers behind a long reader.
        with ctx.conn.transaction():
            ctx.conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(DETACH_LOCK_TIMEOUT)))
            if r["detach_pending"]:  # an earlier concurrent detach was interrupted
                ctx.conn.execute(sql.SQL(
                    "ALTER TABLE public.content_engagement DETACH PARTITION public.{} FINALIZE").format(name))
            else:
                ctx.conn.execute(sql.SQL(
                    "ALTER TABLE public.content_engagement DETACH PARTITION public.{}").format(name))
            ctx.conn.execute(sql.SQL("DROP TABLE public.{}").format(name))
        dropped.append(r["partition_name"])
    if created or dropped:
        # Autovacuum never analyzes a partitioned parent; its statistics are refreshed here.
        ctx.conn.execute("ANALYZE public.content_engagement")
    default = _one(ctx.conn, "default_partition_rows")
    if default["row_count"]:
        log.warning("engagement rows in the default partition", rows=default["row_count"],
                    oldest=str(default["oldest"]), newest=str(default["newest"]))
    return TaskResult(len(created) + len(dropped), {
        "created": created, "dropped": dropped, "default_partition_rows": default["row_count"]})


def analytics(ctx: TaskContext) -> TaskResult:
    """Refresh the content performance view (fully the first time, concurrently after)."""
    mode = _one(ctx.conn, "refresh_analytics")["mode"]
    return TaskResult(0, {"mode": mode})


def sessions(ctx: TaskContext) -> TaskResult:
    """Remove stale editing sessions and release expired content locks."""
    idle = dt.timedelta(minutes=ctx.settings.session_idle_minutes)
    removed = released = 0
    for _ in range(MAX_BATCHES):
        row = _one(ctx.conn, "cleanup_sessions", max_idle=idle)
        removed += row["sessions_removed"]
        released += row["locks_released"]
        if row["sessions_removed"] < 10000 and row["locks_released"] < 10000:
            break
    return TaskResult(removed + released, {"sessions_removed": removed, "locks_released": released})


def jobs(ctx: TaskContext) -> TaskResult:
    """Reclaim jobs whose worker lease expired and purge finished jobs past the retention.

    The workers' relay reclaims leases and re-sends lost nudges continuously; this task is the
    backstop while no worker runs, and it owns the purge.
    """
    reclaimed = _one(ctx.conn, "reclaim_jobs")["n"]
    retention = dt.timedelta(days=ctx.settings.job_retention_days)
    purged = _drain(ctx.conn, "purge_jobs", "n", retention=retention, batch=5000)
    return TaskResult(reclaimed + purged, {"reclaimed": reclaimed, "purged": purged})


def nightly(ctx: TaskContext) -> TaskResult:
    """Recount tags, expire stuck uploads, delete unused failed assets with their files, purge by
    retention, then VACUUM (ANALYZE) the high-churn tables, each as its own statement."""
    s = ctx.settings
    details: dict[str, Any] = {}
    details["tags_recounted"] = _one(ctx.conn, "recount_tags")["n"]
    details["uploads_expired"] = _one(ctx.conn, "expire_uploads",
                                      older_than=dt.timedelta(hours=s.stuck_upload_hours))["n"]
    details["assets_removed"], details["files_removed"] = _remove_orphaned_assets(ctx)
    details["jobs_purged"] = _drain(ctx.conn, "purge_jobs", "n", retention=dt.timedelta(days=s.job_retention_days),
                                    batch=5000)
    details["search_queries_purged"] = _one(ctx.conn, "purge_search_queries",
                                            retention=dt.timedelta(days=s.search_query_retention_days))["n"]
    vacuumed = []
    for table in (*HIGH_CHURN_TABLES, *_engagement_partitions_to_vacuum()):
        if _one(ctx.conn, "table_exists", relation=f"public.{table}")["exists"] is False:
            continue  # a month before the first partition was made
        ctx.conn.execute(sql.SQL("VACUUM (ANALYZE) public.{}").format(sql.Identifier(table)))
        vacuumed.append(table)
    details["vacuumed"] = vacuumed
    rows = sum(v for v in details.values() if isinstance(v, int))
    return TaskResult(rows, details)


def _engagement_partitions_to_vacuum(now: dt.datetime | None = None) -> tuple[str, ...]:
    """The engagement partitions written to lately: this month's, last month's and the default."""
    now = now or dt.datetime.now(dt.UTC)
    last_month = (now.replace(day=1) - dt.timedelta(days=1))
    return (f"content_engagement_y{now:%Y}m{now:%m}", f"content_engagement_y{last_month:%Y}m{last_month:%m}",
            "content_engagement_default")


def _remove_orphaned_assets(ctx: TaskContext) -> tuple[int, int]:
    """Two-phase: mark and list, delete the stored files, then delete the rows."""
    from contentforge.storage import StorageError

    removed = files = 0
    older = dt.timedelta(days=ctx.settings.failed_asset_retention_days)
    for _ in range(MAX_BATCHES):
        batch = ctx.conn.execute(_q("collect_orphans"), {"failed_older_than": older, "batch": 200}).fetchall()
        if not batch:
            break
        done = []
        for a in batch:
            try:
                # The original is ours to delete only when it is in our store's bucket: an original
                # ingested from Supabase Storage names an object in the tenant's own bucket there.
                ours = {a["storage_path"]} if a["storage_bucket"] == OWN_BUCKET else set()
                for key in ours | set(a["variant_keys"] or []):
                    ctx.storage.delete(key)
                    files += 1
                ctx.storage.delete_prefix(f"{a['tenant_id']}/{a['asset_id']}/")
                done.append(a["asset_id"])
            except StorageError as exc:  # leave the row marked 'deleted'; the next run retries
                log.warning("could not delete an asset's files", asset_id=str(a["asset_id"]), error=str(exc))
        removed += _one(ctx.conn, "purge_assets", ids=done)["n"] if done else 0
        if len(done) < len(batch) or len(batch) < 200:
            break
    return removed, files


def storage(ctx: TaskContext) -> TaskResult:
    """Remove output files no asset points at (losing attempts, replaced results, deleted assets)
    once older than the grace period (:mod:`contentforge.storage_sweep`)."""
    from contentforge.storage_sweep import sweep_outputs

    swept = sweep_outputs(ctx.conn, ctx.storage, dt.timedelta(seconds=ctx.settings.storage_sweep_grace_seconds))
    return TaskResult(swept.removed, swept.as_dict())


@dataclass(frozen=True)
class Task:
    name: str
    func: Callable[[TaskContext], TaskResult]
    setting: str  # the Settings field holding its schedule

    def schedule(self, settings: Settings) -> str:
        return str(getattr(settings, self.setting))


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("publish", publish, "schedule_publish"),
    Task("jobs", jobs, "schedule_jobs"),
    Task("sessions", sessions, "schedule_sessions"),
    Task("analytics", analytics, "schedule_analytics"),
    Task("partitions", partitions, "schedule_partitions"),
    Task("nightly", nightly, "schedule_nightly"),
    Task("storage", storage, "schedule_storage_sweep"),
)}
