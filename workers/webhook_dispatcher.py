"""The webhook dispatcher: claim due deliveries, POST them signed, record each attempt.

Any number of dispatchers may run (`contentforge webhooks dispatch`, one per host or more): each
claims a batch with ``FOR UPDATE SKIP LOCKED`` (``claim_webhook_deliveries``), so two never post the
same attempt. A claim is a lease: a dispatcher that dies mid-batch leaves its deliveries
``delivering`` until :data:`DELIVERY_LEASE_SECONDS` pass, then another takes them over. Every
attempt of one event carries the event's id as ``webhook-id``, so a receiver deduplicates a
delivery made twice (a dispatcher that died after the POST but before recording it).

It sleeps on ``LISTEN contentforge_events`` (every new event and every replay notifies at commit)
and on the time until the next retry is due, so a new event is posted within milliseconds of
the commit that made it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from contentforge.db import connect
from contentforge.errors import DatabaseUnavailable
from contentforge.logging import get_logger
from contentforge.settings import Settings
from schema.named_queries import queries
from workers.webhook_post import AddressPolicy, PostResult, post
from workers.webhook_signature import signed_headers

log = get_logger(__name__)

#: How long a claimed delivery stays with its dispatcher before another may take it over, in
#: seconds: well above the 10 s attempt timeout plus the time to record the attempt.
DELIVERY_LEASE_SECONDS = 60
#: Longest sleep between looks at the deliveries table when no notification arrives, in seconds
#: (a lost notification, a retry whose time came, an endpoint enabled again).
IDLE_POLL_SECONDS = 1.0
#: Longest a busy dispatcher waits before looking for new deliveries for its free threads, in
#: seconds (it also wakes whenever an attempt ends).
BUSY_POLL_SECONDS = 0.05
#: How often a dispatcher purges events older than the retention, in seconds.
PURGE_INTERVAL_SECONDS = 3600.0
#: Events deleted per purge statement (bounded, so a purge never holds locks for long).
PURGE_BATCH = 5000


def dispatcher_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """One dispatcher: a claiming loop on the calling thread and a pool of posting threads."""

    def __init__(self, settings: Settings, database_url: str, *, ident: str | None = None) -> None:
        self.settings = settings
        self.database_url = database_url
        self.id = ident or dispatcher_id()
        self.policy = AddressPolicy(allow_http=settings.webhook_allow_http,
                                    allow_private=settings.webhook_allow_private_addresses)
        self.threads = settings.webhook_dispatch_threads
        self.per_tenant = settings.webhook_max_in_flight_per_tenant
        self.batch = self.threads * 2
        self.q = queries("webhooks")
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="cf-webhook")
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        #: Deliveries this dispatcher saw succeed.
        self.delivered = 0

    # --- connections -------------------------------------------------------------------------
    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = connect(self.database_url, autocommit=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _execute(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            return self._conn().execute(self.q[name], params).fetchall()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop_conn()
            raise DatabaseUnavailable(f"webhook dispatcher lost PostgreSQL: {exc}") from exc

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # --- one batch ---------------------------------------------------------------------------
    def claim(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self._execute("claim_deliveries", {"dispatcher_id": self.id, "limit": limit or self.batch,
                                                  "lease_seconds": DELIVERY_LEASE_SECONDS,
                                                  "per_tenant": self.per_tenant})

    def run_once(self) -> int:
        """Claim one batch of due deliveries, post them all, record the batch; return how many."""
        rows = self.claim()
        if rows:
            self._finish(list(zip(rows, self._pool.map(self._post, rows), strict=True)))
        return len(rows)

    def _post(self, row: dict[str, Any]) -> PostResult:
        try:
            body = row["body"].encode("utf-8")
            headers = signed_headers(row["secrets"], str(row["event_id"]), int(time.time()), body)
            return post(row["url"], body, headers, self.policy)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one attempt, not the dispatcher
            return PostResult(None, 0, f"internal error: {exc.__class__.__name__}: {exc}", "", None)

    def _finish(self, done: list[tuple[dict[str, Any], PostResult]]) -> None:
        """Record finished attempts (one statement) and log one line per attempt."""
        statuses = self._record([row for row, _ in done], [result for _, result in done])
        for row, result in done:
            status = statuses.get(row["delivery_id"], "unrecorded")
            log.info("webhook attempt", outcome=status, event_id=str(row["event_id"]), event_type=row["event_type"],
                     endpoint_id=str(row["endpoint_id"]), tenant_id=str(row["tenant_id"]),
                     delivery_id=str(row["delivery_id"]), attempt=row["attempt"], status_code=result.status_code,
                     latency_ms=result.latency_ms, address=result.connected_to, error=result.error)
            if result.succeeded and status == "succeeded":
                self.delivered += 1

    def _record(self, rows: list[dict[str, Any]], results: list[PostResult]) -> dict[Any, str]:
        """Record a batch's attempts in one statement: {delivery id: its new status}."""
        s = self.settings
        batch = [{"delivery_id": str(row["delivery_id"]), "attempt": row["attempt"], "succeeded": r.succeeded,
                  "status_code": r.status_code, "latency_ms": r.latency_ms, "error": r.error,
                  "response_excerpt": r.body_excerpt or None} for row, r in zip(rows, results, strict=True)]
        params = {
            "dispatcher_id": self.id, "results": Jsonb(batch),
            "retry_base_seconds": s.webhook_retry_base_seconds, "retry_max_seconds": s.webhook_retry_max_seconds,
            "give_up_after_seconds": s.webhook_retry_hours * 3600.0,
            "disable_after_seconds": s.webhook_disable_after_days * 86400.0,
        }
        try:
            return {r["delivery_id"]: r["status"] for r in self._execute("record_attempts", params)}
        except DatabaseUnavailable as exc:
            # The leases expire and the deliveries are attempted again (same webhook-id).
            log.warning("could not record webhook attempts; they will be retried", error=str(exc))
            return {}

    # --- the loop ----------------------------------------------------------------------------
    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Deliver until ``stop`` is set. ``ready`` is set once the dispatcher listens.

        Attempts are pipelined: each posting thread takes the next delivery as soon as its attempt
        ends, so one slow receiver (up to the 10 s timeout) holds one thread, never a batch of
        other tenants' deliveries; claims and records are still batched. At stop, attempts in
        flight are finished and recorded.
        """
        listener: psycopg.Connection[Any] | None = None
        in_flight: dict[Future[PostResult], dict[str, Any]] = {}
        unrecorded: list[tuple[dict[str, Any], PostResult]] = []
        first_unrecorded = 0.0
        last_purge = 0.0
        log.info("webhook dispatcher started", dispatcher_id=self.id, threads=self.threads)
        try:
            while not stop.is_set():
                try:
                    if listener is None or listener.closed:
                        listener = connect(self.database_url, autocommit=True)
                        listener.execute(self.q["listen_events"])
                        if ready is not None:
                            ready.set()
                    for f in [f for f in in_flight if f.done()]:
                        if not unrecorded:
                            first_unrecorded = time.monotonic()
                        unrecorded.append((in_flight.pop(f), f.result()))
                    # Record finished attempts together (one statement): when half the threads'
                    # worth has finished, when nothing else is in flight, or after a short wait.
                    if unrecorded and (len(unrecorded) >= max(1, self.threads // 2) or not in_flight
                                       or time.monotonic() - first_unrecorded >= BUSY_POLL_SECONDS):
                        self._finish(unrecorded)
                        unrecorded = []
                    # Keep up to two deliveries per thread in hand (one posting, one queued behind
                    # it), claiming in batches once half are done.
                    if len(in_flight) <= self.threads:
                        for row in self.claim(self.batch - len(in_flight)):
                            in_flight[self._pool.submit(self._post, row)] = row
                    if in_flight:
                        # Busy: wake when an attempt ends, or after a short while to record and to
                        # look for new deliveries.
                        wait(in_flight, timeout=BUSY_POLL_SECONDS, return_when=FIRST_COMPLETED)
                        continue
                    if time.monotonic() - last_purge > PURGE_INTERVAL_SECONDS:
                        last_purge = time.monotonic()
                        self._execute("purge_events", {"retention_days": self.settings.webhook_event_retention_days,
                                                       "batch": PURGE_BATCH})
                    due = self._execute("next_due")[0]["seconds"]
                    pause = IDLE_POLL_SECONDS if due is None else max(0.0, min(due, IDLE_POLL_SECONDS))
                    if pause > 0:
                        for _ in listener.notifies(timeout=pause, stop_after=1):
                            pass
                except (DatabaseUnavailable, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    log.warning("webhook dispatcher cannot reach PostgreSQL; retrying", error=str(exc).strip())
                    if listener is not None:
                        listener.close()
                    listener = None
                    stop.wait(1.0)
        finally:
            unrecorded += [(row, f.result()) for f, row in in_flight.items()]
            if unrecorded:
                self._finish(unrecorded)
            if listener is not None:
                listener.close()
            log.info("webhook dispatcher stopped", dispatcher_id=self.id, delivered=self.delivered)
