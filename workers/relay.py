"""The relay: turns ready pending rows into nudges on the Dramatiq queue.

- It LISTENs on ``contentforge_jobs`` (sent at commit by enqueue, retry and release). On each
  notification it first sends one nudge at once if none is waiting (an idle worker starts without
  waiting for a query: the check and the nudge are one Redis round trip, and the pools it goes by
  are the ones read at the last top-up), then *tops up* the queue: it counts ready pending rows
  (capped at ``relay_max_nudges``) and sends as many nudges as that count exceeds the nudges already
  waiting in Redis. Each batch of nudges and its wake-up on the queue's channel are one round trip
  to Redis (workers/broker.py).
- Every ``sweep_interval_seconds`` (and when a delayed job becomes ready) it also reclaims expired
  leases (``reclaim_expired_jobs``), purges finished jobs older than the retention in one bounded
  batch, and tops up. So a nudge lost in Redis (flushed, restarted, never sent) delays a job by at
  most one sweep interval, and a dead worker's job runs again soon after its lease expires. The
  sweep also publishes a wake-up on the queue whenever ready rows remain, so a nudge whose wake-up
  was lost (Redis pub/sub delivers at most once) waits at most one sweep interval as well.
- One relay is active per database: it holds a session advisory lock on its LISTEN connection.
  Others wait on standby and take over when that connection goes away.
- Per pool: workers serving a pool of job types read that pool's own queue (``workers.pools``).
  Each top-up reads the pools the supervisors report in ``app_private.worker_pools`` and tops up
  each pool's queue with the ready jobs of that pool's types (paused jobs left out), up to the
  pool's thread count; so a nudge never wakes a worker that cannot take the job. While no pool is
  reported (a relay without supervisors, as in the in-process tests) it tops up ``queue_name``
  for every job type, as before pools existed.

Too many nudges are harmless (an actor that finds nothing to claim returns), so the top-up only
needs to be a lower bound; but each costs a claim query, so the supervisor caps them at its thread
count, and actors that find work pass the nudge on to the next idle thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import dramatiq
import psycopg
import redis

from contentforge.db import open_connection
from contentforge.errors import BrokerUnavailable, DatabaseUnavailable
from contentforge.logging import get_logger
from schema.named_queries import queries
from workers.broker import WakingRedisBroker, queue_size
from workers.claim import JobStore
from workers.pools import POOL_STALE_SECONDS

log = get_logger(__name__)
T = TypeVar("T")

#: Session advisory lock that elects the one active relay per database ("cfjobrly").
RELAY_LOCK_KEY = 0x63666A6F62726C79
#: Pause before the relay's first restart, in seconds; it doubles on each failure that follows
#: closely on the last (up to RESTART_MAX_DELAY_SECONDS), so a failure that repeats at once (a bug)
#: does not restart and log a traceback several times a second.
RESTART_DELAY_SECONDS = 0.2
RESTART_MAX_DELAY_SECONDS = 5.0
#: A relay that ran this long before failing was healthy: its next restart waits the first pause again.
HEALTHY_RUN_SECONDS = 30.0
#: Rows purged per sweep: bounded, so a sweep never holds locks or the database for long.
PURGE_BATCH = 5000
#: Expired leases reclaimed per sweep.
RECLAIM_BATCH = 1000
#: How long the top-up waits after a notification's first nudge, in seconds. That nudge already
#: wakes a worker, and a worker that finds work passes a nudge on; the top-up's queries would only
#: compete for the CPU and PostgreSQL with that worker's claim (a few milliseconds on a small
#: machine). Notifications arriving meanwhile share the one top-up.
TOP_UP_DELAY_SECONDS = 0.01


class Relay:
    def __init__(self, *, database_url: str, broker: WakingRedisBroker, queue_name: str, lease_seconds: int,
                 sweep_interval: float, retention_days: int, max_nudges: int = 1000,
                 pool_max_nudges: int = 1000) -> None:
        self.database_url = database_url
        self.broker = broker
        self.queue_name = queue_name
        self.sweep_interval = sweep_interval
        self.retention_days = retention_days
        self.max_nudges = max_nudges  # for queue_name while no pool is reported
        self.pool_max_nudges = pool_max_nudges  # per reported pool: also at most its thread count
        self._declared: set[str] = {queue_name}
        self.store = JobStore(database_url, lease_seconds=lease_seconds, reconnect_seconds=2.0)
        self.active = threading.Event()  # set while this relay holds the lock
        self.nudges_sent = 0
        self.restarts = 0  # times the loop died of an unexpected error and was started again
        self._next_ready: datetime | None = None
        #: The pools read by the last top-up: a notification's first nudge goes by them, so that it
        #: waits for no query (see :meth:`notified`).
        self._pools: list[tuple[str, list[str] | None, int]] | None = None
        broker.declare_queue(queue_name)

    # --- the steps ------------------------------------------------------------------------
    def nudge(self, count: int, queue_name: str | None = None) -> None:
        """Send ``count`` nudges to ``queue_name`` (default: the relay's own queue), then one wake-up
        for that queue's idle consumers."""
        queue = queue_name or self.queue_name
        if queue not in self._declared:
            self.broker.declare_queue(queue)
            self._declared.add(queue)
        self.broker.nudge(queue, count)
        self.nudges_sent += count

    def pools(self) -> list[tuple[str, list[str] | None, int]]:
        """(queue, job types or None for all, most nudges) of every pool to nudge."""
        reported = self.store.live_pools(POOL_STALE_SECONDS)
        if not reported:
            pools: list[tuple[str, list[str] | None, int]] = [(self.queue_name, None, self.max_nudges)]
        else:
            pools = [(p["queue_name"], p["job_types"], min(self.pool_max_nudges, int(p["threads"])))
                     for p in reported]
        self._pools = pools
        return pools

    def notified(self) -> int:
        """A commit announced ready work. With one pool that takes every job type (the default
        deployment), send one nudge at once if none is waiting, before any query (an idle worker
        should not wait for one): the pools are those of the last top-up, and the check and the nudge
        are one round trip to Redis. Then top up every pool, from the pools read now. With several
        pools the notification does not say which pool the work is for, and a nudge must never wake a
        worker that cannot take the job, so they are topped up from their counts only. (Pools read a
        moment ago are safe to go by: the pool that takes every job type can take this one; if it
        stopped since, its one nudge waits in a queue nobody reads.)"""
        sent_to = self.nudge_at_once()
        return (sent_to is not None) + self.top_up(already_sent=1 if sent_to else 0, sent_to=sent_to)

    def nudge_at_once(self) -> str | None:
        """The first step of :meth:`notified`: with one pool that takes every job type (as read at
        the last top-up), one nudge to its queue unless one is waiting there; returns the queue
        nudged, or None (several pools, or a nudge was waiting)."""
        known = self._pools if self._pools is not None else self.pools()
        if len(known) != 1 or known[0][1] is not None:
            return None
        queue = known[0][0]
        if queue not in self._declared:
            self.broker.declare_queue(queue)
            self._declared.add(queue)
        if not self.broker.nudge(queue, 1, only_if_idle=True):
            return None
        self.nudges_sent += 1
        return queue

    def top_up(self, *, wake: bool = False, already_sent: int = 0, sent_to: str | None = None,
               pools: list[tuple[str, list[str] | None, int]] | None = None) -> int:
        """Send nudges until each pool's queue holds at least one per ready job of its types (up to
        its cap), counting ``already_sent`` nudges just sent to the queue ``sent_to`` (None: to a
        single pool) as waiting (whether or not a worker fetched them already). With ``wake`` (the
        sweep), wake a pool's consumers even when no nudge was missing: the nudges waiting may be
        ones whose wake-up was lost."""
        sent = 0
        next_ready: datetime | None = None
        for queue, job_types, cap in pools if pools is not None else self.pools():
            ready, upcoming = self.store.queue_ready(cap, job_types)
            if upcoming is not None and (next_ready is None or upcoming < next_ready):
                next_ready = upcoming
            if ready == 0:
                continue
            # The nudges just sent are in the queue unless a worker fetched them already: either
            # way they count once.
            just_sent = already_sent if sent_to is None or sent_to == queue else 0
            missing = min(ready, cap) - max(queue_size(self.broker, queue), just_sent)
            if missing > 0:
                self.nudge(missing, queue)
                sent += missing
            elif wake:
                self.broker.wake(queue)
        self._next_ready = next_ready
        return sent

    def sweep(self) -> dict[str, int]:
        reclaimed = self._housekeeping("reclaim expired leases", lambda: self.store.reclaim_expired(RECLAIM_BATCH), [])
        for row in reclaimed:
            log.warning("lease expired; job reclaimed", job_id=str(row["job_id"]), new_status=row["new_status"])
        purged = self._housekeeping("purge finished jobs",
                                    lambda: self.store.purge_finished(self.retention_days, PURGE_BATCH), 0)
        sent = self.top_up(wake=True)
        return {"reclaimed": len(reclaimed), "purged": purged, "nudged": sent}

    @staticmethod
    def _housekeeping(what: str, step: Any, failed: Any) -> Any:
        """Run one housekeeping step; an SQL error of its own (a trigger refusing the purge, a
        statement timeout on a huge batch) is logged and skipped, so that nudging goes on. A lost
        connection still propagates: the relay reconnects."""
        try:
            return step()
        except (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable):
            raise
        except psycopg.Error as exc:
            log.error(f"relay could not {what}; nudging goes on", error=str(exc).strip().splitlines()[0])
            return failed

    # --- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Elect, listen and sweep until ``stop`` is set; survives PostgreSQL and Redis outages, and
        restarts itself after any other error."""
        delay = RESTART_DELAY_SECONDS / 2  # doubled before the first pause
        while not stop.is_set():
            started = time.monotonic()
            try:
                with open_connection(self.database_url, autocommit=True, connect_timeout=5,
                                     application_name="contentforge-relay") as conn:
                    self._serve(conn, stop)
            except (psycopg.Error, DatabaseUnavailable) as exc:
                self.active.clear()
                delay = _restart_delay(delay, started)
                log.warning("relay lost PostgreSQL; reconnecting", error=str(exc).strip(), retry_in=delay)
                stop.wait(delay)
            except Exception as exc:
                # Anything else (a bug, an unexpected library error) would end the thread and with
                # it every nudge and lease reclaim until the process restarted: log it, give the
                # lock up (the connection closed above) and start over, as after an outage.
                self.active.clear()
                self.restarts += 1
                delay = _restart_delay(delay, started)
                log.error("relay failed; restarting it", error=f"{exc.__class__.__name__}: {exc}".strip(),
                          exc_info=True, retry_in=delay)
                stop.wait(delay)
        self.active.clear()
        self.store.close()

    def _serve(self, conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        q = queries("queue")
        while not stop.is_set():  # standby until elected
            row = conn.execute(q["try_relay_lock"], {"key": RELAY_LOCK_KEY}).fetchone()
            if row and row["ok"]:
                break
            stop.wait(self.sweep_interval)
        if stop.is_set():
            return
        conn.execute(q["listen"])
        self.active.set()
        log.info("relay active", queue=self.queue_name)
        next_sweep = 0.0
        top_up_due: float | None = None  # a notification's top-up, deferred (TOP_UP_DELAY_SECONDS)
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_sweep:
                self._guarded(self.sweep)
                next_sweep = now + self.sweep_interval
                top_up_due = None  # the sweep topped up
            wait = max(0.0, next_sweep - time.monotonic())
            if top_up_due is not None:
                wait = min(wait, max(0.0, top_up_due - time.monotonic()))
            if self._next_ready is not None:
                until = (self._next_ready - datetime.now(UTC)).total_seconds()
                wait = min(wait, max(until, 0.0) + 0.005)
            notified = False
            for _ in conn.notifies(timeout=min(wait, 0.5), stop_after=1):
                notified = True
            if notified:
                # The first nudge at once; the top-up a moment later (unless one is due already).
                if self._guarded(self.nudge_at_once) is None:
                    self._guarded(self.top_up)
                    top_up_due = None
                elif top_up_due is None:
                    top_up_due = time.monotonic() + TOP_UP_DELAY_SECONDS
            elif top_up_due is not None and time.monotonic() >= top_up_due:
                # The first nudge has been fetched (or still waits in the queue, where it counts).
                self._guarded(self.top_up)
                top_up_due = None
            elif self._next_ready is not None and datetime.now(UTC) >= self._next_ready:
                self._guarded(self.top_up)

    def _guarded(self, step: Callable[[], T]) -> T | None:
        """Run one step; a Redis outage is logged and retried at the next wake-up (returns None)."""
        try:
            return step()
        except (BrokerUnavailable, redis.RedisError, dramatiq.errors.BrokerConnectionError) as exc:
            log.warning("relay cannot reach Redis; nudges wait for the next sweep", error=str(exc).strip())
            return None


def _restart_delay(previous: float, started: float) -> float:
    """The pause before restarting a relay loop that began at ``started`` (time.monotonic())."""
    if time.monotonic() - started >= HEALTHY_RUN_SECONDS:
        return RESTART_DELAY_SECONDS
    return min(previous * 2, RESTART_MAX_DELAY_SECONDS)
