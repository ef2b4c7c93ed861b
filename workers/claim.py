"""The job row's lifecycle, as seen by a worker: claim, complete, fail, release (the lease's
renewals go over a connection of their own: workers.fence.LeaseRenewer).

Every state change is one SQL function of migration 0005, called by name from
``schema/queries/queue.sql``. Each thread gets its own autocommit connection; a connection that
breaks (PostgreSQL restarted, ``pg_terminate_backend``) is replaced and the call retried with
backoff for up to ``reconnect_seconds``, after which :class:`DatabaseUnavailable` is raised.
Retrying is safe because every worker-side function checks ``worker_id`` and status: a repeated
``complete_job`` after a commit whose reply was lost returns false instead of acting twice. (A job
claimed by such a lost reply, by ``claim`` or ``complete_and_claim``, is nobody's: its lease
expires and the relay hands it to another worker, the lost attempt counted.)
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from contentforge.db import open_connection
from contentforge.errors import DatabaseUnavailable
from contentforge.logging import get_logger
from schema.named_queries import queries
from workers.combiner import Combiner
from workers.pools import TypeGate

log = get_logger(__name__)
T = TypeVar("T")

#: Errors after which the connection is thrown away and the call retried on a fresh one.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
#: The longest a combined call waits for a lock (an asset row another session holds, or a lock-order
#: cycle with a transaction that writes several assets): then it is abandoned, well before
#: PostgreSQL's deadlock detector (deadlock_timeout, 1 s by default) could pick the other session as
#: its victim, and every thread of it sends its own turn alone.
COMBINED_LOCK_TIMEOUT_MS = 200
#: A combined call's answer to each of its threads when it was abandoned: send your turn alone.
ALONE: Any = object()


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds the lease of. Carries ids and parameters, never file contents."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    asset_id: uuid.UUID
    job_type: str
    priority: int
    params: Mapping[str, Any]
    attempts: int
    max_attempts: int
    created_at: datetime
    started_at: datetime
    #: Fencing token of this attempt (new at every claim, migration 0021): the attempt's output keys
    #: carry it, and only the attempt holding it can point the asset at its files.
    claim_token: uuid.UUID | None = None
    #: When the claiming statement was sent, on this process's monotonic clock: the lease began no
    #: earlier, so the self-fence counts from here (workers.fence).
    lease_from: float = 0.0

    @property
    def slot(self) -> tuple[uuid.UUID, uuid.UUID | None]:
        """This claim of the job, for the per-type slots of the process (workers.pools.TypeGate):
        the job id alone would let the end of a lost attempt free the slot of the same job's next
        claim in this process."""
        return (self.id, self.claim_token)


@dataclass(frozen=True)
class _Turn:
    """One thread's part of a combined call: its completion, and its next claim unless told not to."""

    job_id: uuid.UUID
    worker_id: str
    output: str  # JSON text, encoded by the thread itself (an unencodable output fails only its job)
    claim_types: list[str] | bool | None  # False: no claim; None: every type; else these types


@dataclass(frozen=True)
class AssetUpdate:
    """What a finished job writes to its asset (in the transaction that completes the job)."""

    variants: Mapping[str, Any]
    metadata: Mapping[str, Any]
    duration_seconds: float | None = None
    transcript: tuple[str | None, str | None] | None = None  # (text, language) for transcripts


def retry_delay(attempt: int, base_seconds: float, max_seconds: float) -> float:
    """Exponential backoff with jitter: about base * 2**(attempt-1), capped, randomised by ±25 %."""
    raw = min(max_seconds, base_seconds * 2 ** max(attempt - 1, 0))
    return raw * random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not a secret


class JobStore:
    """Calls the queue's SQL functions over one reconnecting connection per thread."""

    def __init__(self, url: str, *, lease_seconds: int, reconnect_seconds: float = 30.0,
                 prepare_threshold: int | None = None, gate: TypeGate | None = None,
                 connect_options: Mapping[str, Any] | None = None, combine: int = 0) -> None:
        self.url = url
        #: Which job types a claim of this process asks for (its pool, minus types at their
        #: per-process limit); the default asks for every type.
        self.gate = gate or TypeGate()
        #: Extra libpq parameters (the workers bound network waits: workers.fence.connection_timeouts).
        self.connect_options = dict(connect_options or {})
        self.prepare_threshold = prepare_threshold  # None: no server-side prepared statements
        self.lease_seconds = lease_seconds
        self.reconnect_seconds = reconnect_seconds
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self.q = queries("queue")
        #: With ``combine`` > 0, completions without asset outputs and the claims riding on them go
        #: through combined calls, at most ``combine`` in flight at once (workers.combiner, 0025).
        self.combiner: Combiner[_Turn, Any] | None = (
            Combiner(self._send_turns, combine) if combine > 0 else None)

    # --- connections -----------------------------------------------------------------------
    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = open_connection(self.url, autocommit=True, **{"connect_timeout": 5, **self.connect_options},
                                   prepare_threshold=self.prepare_threshold, application_name="contentforge-worker")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            # Closing a broken connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                conn.close()

    def run(self, fn: Callable[[psycopg.Connection[Any]], T], *, retry_for: float | None = None) -> T:
        """Call ``fn(conn)``; on a broken connection reconnect and retry with backoff."""
        deadline = time.monotonic() + (self.reconnect_seconds if retry_for is None else retry_for)
        delay = 0.05
        while True:
            try:
                return fn(self._conn())
            except CONNECTION_ERRORS as exc:
                self._drop()
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailable(f"PostgreSQL is unreachable: {str(exc).strip()}") from exc
                log.warning("database connection lost; reconnecting", error=str(exc).strip(),
                            retry_in=round(delay, 2))
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _one(self, name: str, params: Mapping[str, Any], *, retry_for: float | None = None) -> Any:
        sql = self.q[name]
        return self.run(lambda c: c.execute(sql, params).fetchone(), retry_for=retry_for)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):  # best effort at shutdown
                conn.close()

    # --- the lifecycle ---------------------------------------------------------------------
    def claim(self, worker_id: str, *, retry_for: float | None = None) -> ClaimedJob | None:
        """Take the lease of the best ready job of this process's types, or None when none is ready."""
        reservation = self.gate.reserve()
        job: ClaimedJob | None = None
        try:
            if reservation.nothing:  # every type of the pool is at its limit in this process
                return None
            sent = time.monotonic()
            row = self._one("claim", {"worker_id": worker_id, "lease_seconds": self.lease_seconds,
                                      "job_types": reservation.types}, retry_for=retry_for)
            job = _claimed(row, sent)
            return job
        finally:
            self.gate.settle(reservation, job.slot if job else None, job.job_type if job else None)

    def finished(self, job: ClaimedJob) -> None:
        """The job ended in this process, whatever the outcome: its type's slot is free again."""
        self.gate.finished(job.slot)

    def asset(self, job: ClaimedJob) -> dict[str, Any] | None:
        return self._one("asset_for_job", {"tenant_id": job.tenant_id, "asset_id": job.asset_id})

    def complete(self, job: ClaimedJob, worker_id: str, output: Mapping[str, Any],
                 update: AssetUpdate | None, *, claim_next: bool = False) -> tuple[bool, ClaimedJob | None]:
        """Mark the job completed and write its outputs to the asset, atomically; with
        ``claim_next``, also take the lease of the next ready job in the same transaction.

        Returns (ours, next job). ``ours`` is False (and nothing written) when the job is no longer
        ours. A job without asset outputs (the common case of a busy queue) takes one statement and
        one round trip for both steps.
        """
        self.gate.finished(job.slot)  # the completed job no longer holds its slot
        reservation = self.gate.reserve() if claim_next else None
        if reservation is not None and reservation.nothing:
            claim_next = False
        params = {"job_id": job.id, "worker_id": worker_id, "output": Jsonb(dict(output)),
                  "lease_seconds": self.lease_seconds, "claim_next": claim_next,
                  "job_types": reservation.types if reservation else None}
        nxt: ClaimedJob | None = None
        try:
            ours, nxt = self._complete(job, params, update)
        finally:
            if reservation is not None:
                self.gate.settle(reservation, nxt.slot if nxt else None, nxt.job_type if nxt else None)
        if not ours and claim_next and update is not None:
            # The completing transaction was rolled back, and the claim riding on it with it.
            return False, self.claim(worker_id)
        return ours, nxt

    def _complete(self, job: ClaimedJob, params: dict[str, Any],
                  update: AssetUpdate | None) -> tuple[bool, ClaimedJob | None]:
        claim_next = params["claim_next"]
        if update is None and self.combiner is not None:
            turn = _Turn(job.id, params["worker_id"], json.dumps(params["output"].obj),
                         params["job_types"] if claim_next else False)
            answer = self.combiner.submit(turn)
            if answer is not ALONE:
                ours, nxt = answer
                return bool(ours), nxt
            # The combined call was abandoned (nothing of it committed): this turn goes alone.
        sent = time.monotonic()
        if update is None:
            row = self._one("complete_and_claim", params)
            return bool(row and row["ours"]), _claimed(row, sent)

        def tx(conn: psycopg.Connection[Any]) -> tuple[bool, ClaimedJob | None]:
            with conn.transaction():
                row = conn.execute(self.q["complete"], params).fetchone()
                if not row or not row["ours"]:
                    raise _NotOurs  # rolls the transaction back
                text, language = update.transcript or (None, None)
                fenced = conn.execute(self.q["record_attempt_outputs"], {
                    "job_id": job.id, "claim_token": job.claim_token,
                    "variants": Jsonb(dict(update.variants)), "metadata": Jsonb(dict(update.metadata)),
                    "duration_seconds": update.duration_seconds,
                    "set_transcript": update.transcript is not None,
                    "transcript_text": text, "transcript_language": language,
                }).fetchone()
                if not fenced or not fenced["ours"]:
                    raise _NotOurs  # another attempt claimed the job since: its files stay current
                nxt = conn.execute(self.q["claim"], params).fetchone() if claim_next else None
            return True, _claimed(nxt, sent)

        try:
            return self.run(tx)
        except _NotOurs:
            return False, None

    def _send_turns(self, turns: Sequence[_Turn]) -> list[Any]:
        """The combiner's call: every turn's completion, then the claims, in one statement and commit.
        Answers (ours, next job) per turn, or ALONE for every turn when the call was abandoned (a
        lock wait over COMBINED_LOCK_TIMEOUT_MS, or an error other than a broken connection)."""
        claims = [t for t in turns if t.claim_types is not False]
        params = {"lease_seconds": self.lease_seconds,
                  "done_ids": [t.job_id for t in turns], "done_workers": [t.worker_id for t in turns],
                  "outputs": [t.output for t in turns],
                  "claim_workers": [t.worker_id for t in claims],
                  "claim_types": Jsonb([t.claim_types for t in claims]),
                  "lock_timeout_ms": COMBINED_LOCK_TIMEOUT_MS}
        sql = self.q["complete_and_claim_jobs"]

        def call(conn: psycopg.Connection[Any]) -> list[Any] | psycopg.Error:
            try:  # one statement; the lock timeout is set by the function, for its transaction only
                return conn.execute(sql, params).fetchall()
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
                return exc  # (OperationalErrors, but the connection is fine: no reconnect)
            except CONNECTION_ERRORS:
                raise  # JobStore.run reconnects and sends the call again
            except psycopg.Error as exc:  # e.g. one job's output that jsonb refuses
                return exc

        sent = time.monotonic()
        rows = self.run(call)
        if isinstance(rows, psycopg.Error):
            log.info("combined call abandoned; each thread sends its own", turns=len(turns),
                     error=(str(rows).strip().splitlines() or [type(rows).__name__])[0])
            return [ALONE] * len(turns)
        ours = {r["ord"]: r["ours"] for r in rows if r["kind"] == "done"}
        got = {r["ord"]: _claimed(r, sent) for r in rows if r["kind"] == "claim"}
        if len(ours) != len(turns) or len(got) != len(claims):
            raise RuntimeError(f"complete_and_claim_jobs answered {len(ours)}/{len(turns)} completions "
                               f"and {len(got)}/{len(claims)} claims")
        answers: list[tuple[bool, ClaimedJob | None]] = []
        c = 0
        for d, t in enumerate(turns, 1):
            nxt: ClaimedJob | None = None
            if t.claim_types is not False:
                c += 1
                nxt = got[c]
            answers.append((bool(ours[d]), nxt))
        return answers

    def fail(self, job: ClaimedJob, worker_id: str, message: str, details: Mapping[str, Any] | None,
             *, transient: bool, retry_delay_seconds: float) -> str | None:
        """Record a failure; returns the new status (pending: retried later; failed), or None
        when the job was no longer ours."""
        self.gate.finished(job.slot)
        row = self._one("fail", {
            "job_id": job.id, "worker_id": worker_id, "message": message,
            "details": Jsonb(dict(details)) if details is not None else None,
            "transient": transient, "retry_delay_seconds": retry_delay_seconds,
        })
        return row["status"] if row else None

    def release(self, job_id: uuid.UUID, worker_id: str, *, retry_for: float | None = None) -> bool:
        """Give a running job back to the queue without counting the attempt."""
        row = self._one("release", {"job_id": job_id, "worker_id": worker_id}, retry_for=retry_for)
        return bool(row and row["released"])

    # --- housekeeping (the relay) ----------------------------------------------------------
    def reclaim_expired(self, limit: int = 1000) -> list[dict[str, Any]]:
        sql = self.q["reclaim_expired"]
        return self.run(lambda c: c.execute(sql, {"limit": limit}).fetchall())

    def purge_finished(self, retention_days: int, batch: int = 5000) -> int:
        row = self._one("purge_finished", {"retention_days": retention_days, "batch": batch})
        return int(row["purged"])

    def live_pools(self, stale_seconds: float) -> list[dict[str, Any]]:
        """The pools supervisors reported within ``stale_seconds`` (older reports are deleted)."""
        sql = self.q["live_worker_pools"]
        return self.run(lambda c: c.execute(sql, {"stale_seconds": stale_seconds}).fetchall())

    def queue_ready(self, limit: int, job_types: Sequence[str] | None = None) -> tuple[int, datetime | None]:
        """Ready jobs of these types (None: all), not paused, up to ``limit``; the next delayed one."""
        row = self._one("queue_ready", {"limit": limit,
                                        "job_types": list(job_types) if job_types is not None else None})
        return int(row["ready"]), row["next_run_after"]


def _claimed(row: Mapping[str, Any] | None, sent: float = 0.0) -> ClaimedJob | None:
    """A claim's row as a ClaimedJob; None for no row or an all-NULL row (nothing was claimed)."""
    if row is None or row["id"] is None:
        return None
    return ClaimedJob(
        id=row["id"], tenant_id=row["tenant_id"], asset_id=row["asset_id"], job_type=row["job_type"],
        priority=row["priority"], params=row["input_params"], attempts=row["attempts"],
        max_attempts=row["max_attempts"], created_at=row["created_at"], started_at=row["started_at"],
        claim_token=row.get("claim_token"), lease_from=sent,
    )


class _NotOurs(Exception):
    """Internal: rolls back the completing transaction when the lease was lost."""
