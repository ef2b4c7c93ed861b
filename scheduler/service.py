"""The long-running scheduler process: one active replica, the others on standby.

The active replica holds a session advisory lock on its own connection; PostgreSQL releases it the
moment that process or connection dies, and a standby (polling every
``scheduler_standby_poll_seconds``) takes over. On becoming active, a replica first catches up:
each cron task whose latest due time passed without a run runs once (not once per missed time);
interval tasks run at once. APScheduler then runs every task on its schedule with coalescing, one
instance at a time and a generous misfire grace, so a process that slept catches up once.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler

from contentforge.db import connect, one
from contentforge.logging import get_logger
from contentforge.settings import Settings
from scheduler import schedules
from scheduler.runner import run_task
from scheduler.tasks import TASKS
from schema.named_queries import queries

log = get_logger("contentforge.scheduler")

#: Advisory lock held by the active scheduler replica ("cfsched").
LEADER_LOCK_KEY = 0x6366736368656400
#: A run that starts this late after its due time is still run (once); later ones are skipped
#: by APScheduler and the next start's catch-up handles them.
MISFIRE_GRACE_SECONDS = 6 * 3600


class SchedulerService:
    def __init__(self, db_url: str, settings: Settings, storage_url: str | None = None,
                 stopping: threading.Event | None = None) -> None:
        self.db_url = db_url
        self.settings = settings
        self.storage_url = storage_url
        self.stopping = stopping or threading.Event()  # `contentforge scheduler` passes one set by SIGTERM/SIGINT
        self.triggers = {name: schedules.parse(t.schedule(settings)) for name, t in TASKS.items()}
        self._leader_conn: psycopg.Connection[Any] | None = None
        self._aps: BackgroundScheduler | None = None

    # --- leadership ----------------------------------------------------------------------
    def _try_lead(self) -> bool:
        try:
            conn = connect(self.db_url, autocommit=True, application_name="contentforge-scheduler")
        except Exception as exc:  # noqa: BLE001 - database down: stay on standby and retry
            log.warning("scheduler cannot reach the database", error=str(exc).splitlines()[0])
            return False
        try:
            if one(conn, "SELECT pg_try_advisory_lock(%s) AS ok", (LEADER_LOCK_KEY,))["ok"]:
                self._leader_conn = conn
                return True
        except Exception as exc:  # noqa: BLE001 - any failure of the attempt: stay on standby and retry
            log.warning("scheduler could not try for leadership", error=str(exc).strip().splitlines()[0])
        conn.close()
        return False

    def _still_leader(self) -> bool:
        conn = self._leader_conn
        if conn is None:
            return False
        try:
            conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def _step_down(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=True)
            self._aps = None
        if self._leader_conn is not None:
            try:
                self._leader_conn.close()
            finally:
                self._leader_conn = None

    # --- scheduling ----------------------------------------------------------------------
    def _run(self, name: str, trigger: str, due_at: dt.datetime | None) -> None:
        if self.stopping.is_set():
            return
        run_task(self.db_url, self.settings, name, trigger=trigger, due_at=due_at, storage_url=self.storage_url)

    def _scheduled(self, name: str) -> None:
        trig = self.triggers[name]
        now = dt.datetime.now(dt.UTC)
        due = None
        if schedules.is_cron(trig):
            due = schedules.latest_due(trig, now - dt.timedelta(seconds=MISFIRE_GRACE_SECONDS), now)
        self._run(name, "schedule", due)

    def catch_up(self) -> None:
        """Run once each cron task whose latest due time has no run; run interval tasks now."""
        now = dt.datetime.now(dt.UTC)
        with connect(self.db_url, autocommit=True) as conn:
            last = {name: one(conn, queries("scheduler")["last_scheduled_start"], {"task": name})["at"]
                    for name in TASKS}
        for name, trig in self.triggers.items():
            if self.stopping.is_set():
                return
            if schedules.is_cron(trig):
                due = schedules.latest_due(trig, last[name], now)
                if due is not None and last[name] is not None:
                    self._run(name, "catch-up", due)
            else:
                self._run(name, "schedule", None)

    def _start_aps(self) -> None:
        aps = BackgroundScheduler(timezone=dt.UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS})
        for name, trig in self.triggers.items():
            aps.add_job(self._scheduled, trig, args=[name], id=name, name=name)
        aps.start()
        self._aps = aps

    def serve(self) -> None:
        """Run until `stopping` is set: stand by, lead, step down when the database connection is lost."""
        log.info("scheduler starting", tasks={n: t.schedule(self.settings) for n, t in TASKS.items()})
        poll = self.settings.scheduler_standby_poll_seconds
        try:
            while not self.stopping.is_set():
                if self._leader_conn is None:
                    if self._try_lead():
                        log.info("scheduler is active")
                        self.catch_up()
                        self._start_aps()
                    else:
                        self.stopping.wait(poll)
                        continue
                self.stopping.wait(poll)
                if not self._still_leader():
                    log.warning("scheduler lost its database connection; standing by")
                    self._step_down()
        finally:
            self._step_down()
            log.info("scheduler stopped")
