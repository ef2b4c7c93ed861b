"""Running one task once: a per-task lock, a row in the run history, and one summary log line.

The per-task advisory lock makes a manual run and a scheduled run (or two schedulers) never
overlap; the unique (task, due_at) of the history makes a due time run at most once, even across
a failover.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from contentforge.db import connect, one
from contentforge.logging import get_logger
from contentforge.settings import Settings
from scheduler.tasks import TASKS, TaskContext, TaskResult
from schema.named_queries import queries

log = get_logger("contentforge.scheduler")


@dataclass(frozen=True)
class RunOutcome:
    task: str
    outcome: str  # succeeded | failed | skipped
    rows: int = 0
    details: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    reason: str | None = None  # why a run was skipped


def lock_key(task: str) -> int:
    """A stable 64-bit advisory lock key per task name."""
    return int.from_bytes(hashlib.sha256(f"contentforge.task.{task}".encode()).digest()[:8], "big", signed=True)


def run_task(
    db_url: str,
    settings: Settings,
    task_name: str,
    *,
    trigger: str = "manual",
    due_at: dt.datetime | None = None,
    storage_url: str | None = None,
) -> RunOutcome:
    """Run ``task_name`` now unless it is already running or this due time was already served."""
    from contentforge.services import storage_url as default_storage_url

    task = TASKS[task_name]
    q = queries("scheduler")
    bound = log.bind(task=task_name, trigger=trigger, due_at=due_at.isoformat() if due_at else None)
    with connect(db_url, autocommit=True) as conn:
        if not one(conn, q["try_task_lock"], {"key": lock_key(task_name)})["locked"]:
            bound.info("task skipped", reason="already running")
            return RunOutcome(task_name, "skipped", reason="already running elsewhere")
        try:
            row = conn.execute(q["start_run"], {"task": task_name, "trigger": trigger, "due_at": due_at,
                                                 "host": socket.gethostname(), "pid": os.getpid()}).fetchone()
            if row is None:
                bound.info("task skipped", reason="due time already served")
                return RunOutcome(task_name, "skipped", reason="this due time already ran")
            started = time.monotonic()
            ctx = TaskContext(conn, settings, storage_url or default_storage_url(settings))
            try:
                result = task.func(ctx)
            except Exception as exc:  # noqa: BLE001 - recorded, logged, and retried at the next due time
                seconds = time.monotonic() - started
                error = f"{type(exc).__name__}: {exc}".strip()
                _finish(conn, row["id"], "failed", TaskResult(), error)
                bound.error("task failed", error=error, seconds=round(seconds, 3), exc_info=True)
                return RunOutcome(task_name, "failed", error=error, seconds=seconds)
            seconds = time.monotonic() - started
            _finish(conn, row["id"], "succeeded", result, None)
            bound.info("task finished", rows=result.rows, seconds=round(seconds, 3), **result.details)
            return RunOutcome(task_name, "succeeded", result.rows, result.details, seconds=seconds)
        finally:
            if not conn.closed and not conn.broken:
                conn.execute(q["task_unlock"], {"key": lock_key(task_name)})


def _finish(conn: psycopg.Connection[Any], run_id: int, outcome: str, result: TaskResult, error: str | None) -> None:
    conn.execute(queries("scheduler")["finish_run"], {
        "id": run_id, "outcome": outcome, "rows": result.rows, "details": Jsonb(result.details), "error": error})


def last_runs(db_url: str) -> dict[str, dict[str, Any]]:
    with connect(db_url, autocommit=True) as conn:
        return {r["task"]: r for r in conn.execute(queries("scheduler")["last_runs"])}
