"""Threads that must not die quietly (issue 12): the heartbeat outlives a read-only database, the
relay restarts after an error, a cancelled job stops at once, and parameters are checked again when
a job runs. Faults are real: default_transaction_read_only with the sessions cut, a relay made to
raise, a row written past enqueue_asset_job's checks."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from contentforge import api
from tests.integration.queue.conftest import World, enqueue, job, wait_for, wait_status
from workers.relay import Relay

WORKER_SESSIONS = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                   "AND application_name IN ('contentforge-worker', 'contentforge-heartbeat', 'contentforge-relay')")


def _read_only(conn: psycopg.Connection, on: bool) -> None:
    """Make the database read-only (as a standby after a failover is) or writable again, and cut
    the workers' sessions so that they reconnect under the new default."""
    db = sql.Identifier(conn.info.dbname)
    if on:
        conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(db))
    else:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(db))
    conn.execute(WORKER_SESSIONS)


def _heartbeat_tried_since(conn: psycopg.Connection, since: Any) -> bool:
    """A heartbeat session opened after ``since`` has sent a renewal: its statement, or the rollback of
    its transaction (one round trip, workers.fence.LeaseRenewer) after the read-only refusal."""
    return bool(conn.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'contentforge-heartbeat' AND backend_start > %s "
        "AND (query LIKE '%%heartbeat_job%%' OR query = 'ROLLBACK')", (since,)).fetchone()["n"])


def test_heartbeat_survives_a_read_only_database_and_the_job_runs_once(in_process, world: World,
                                                                         conn: psycopg.Connection) -> None:
    """A heartbeat that hits a read-only database keeps going; once writable again it renews the
    lease, so the job is never reclaimed and runs exactly once."""
    in_process(threads=1, lease_seconds=6)
    job_id = enqueue(conn, world.asset, params={"sleep_seconds": 10})
    wait_status(conn, job_id, "running")
    since = conn.execute("SELECT now() AS t").fetchone()["t"]
    _read_only(conn, True)
    try:
        wait_for(lambda: _heartbeat_tried_since(conn, since), 10, "a heartbeat against the read-only database")
    finally:
        _read_only(conn, False)
    row = wait_status(conn, job_id, "completed", timeout=30)
    assert row["attempts"] == 1
    assert row["error_message"] is None


class RelayMadeToRaise(Relay):
    """A relay whose first sweep raises an unexpected error (a bug, an unforeseen library error)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.raised = threading.Event()

    def sweep(self) -> dict[str, int]:
        if not self.raised.is_set():
            self.raised.set()
            raise RuntimeError("relay made to raise")
        return super().sweep()


def test_relay_restarts_after_an_unexpected_error(in_process, world: World, conn: psycopg.Connection) -> None:
    """After its loop raised, the relay starts again and nudges jobs enqueued afterwards; each runs once."""
    w = in_process(threads=1, relay_class=RelayMadeToRaise)
    assert w.relay is not None
    wait_for(w.relay.raised.is_set, 10, "the relay to raise")
    job_id = enqueue(conn, world.asset, params={"tag": "after the crash"})
    row = wait_status(conn, job_id, "completed", timeout=20)
    assert row["attempts"] == 1
    assert w.relay.restarts == 1


def test_cancelled_running_job_frees_its_worker_thread(in_process, world: World, conn: psycopg.Connection) -> None:
    """A cancelled 60-second job stops at the next heartbeat: the only worker thread runs the next
    job long before the cancelled one would have ended."""
    in_process(threads=1)
    long_job = enqueue(conn, world.asset, params={"sleep_seconds": 60})
    wait_status(conn, long_job, "running")
    assert api.cancel(conn, long_job) is True
    after = enqueue(conn, world.asset, params={"tag": "after the cancel"})
    wait_status(conn, after, "completed", timeout=20)
    row = job(conn, long_job)
    assert (row["status"], row["output_data"]) == ("cancelled", {})


def test_params_are_checked_again_when_the_job_runs(in_process, world: World, conn: psycopg.Connection) -> None:
    """A row whose parameters bypassed enqueue_asset_job fails with a message naming the field."""
    row = conn.execute(
        "INSERT INTO asset_processing_jobs (tenant_id, asset_id, job_type, input_params) "
        "VALUES (%s, %s, 'noop', %s) RETURNING id", (world.tenant, world.asset, Jsonb({"bogus": 1}))).fetchone()
    in_process(threads=1)
    failed = wait_status(conn, row["id"], "failed")
    assert failed["attempts"] == 1
    assert failed["error_message"].startswith("noop jobs take no parameter 'bogus' (allowed: crash, fail, ")


def test_relay_keeps_nudging_when_its_purge_fails(in_process, world: World, conn: psycopg.Connection) -> None:
    """A purge refused by the database (a trigger raising on DELETE) is logged and skipped; jobs
    enqueued meanwhile still run."""
    conn.execute("""CREATE FUNCTION public.refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'purging is refused here'; END $$""")
    conn.execute("CREATE TRIGGER refuse_delete BEFORE DELETE ON asset_processing_jobs "
                 "FOR EACH ROW EXECUTE FUNCTION public.refuse_delete()")
    conn.execute("INSERT INTO asset_processing_jobs (tenant_id, asset_id, job_type, status, completed_at, input_params) "
                 "VALUES (%s, %s, 'noop', 'completed', now() - interval '30 days', '{\"tag\": \"old\"}')",
                 (world.tenant, world.asset))
    in_process(threads=1, job_retention_days=1)
    job_id = enqueue(conn, world.asset, params={"tag": "new"})
    assert wait_status(conn, job_id, "completed", timeout=20)["attempts"] == 1


class RelayAlwaysRaising(Relay):
    """A relay whose every sweep raises at once: a bug that repeats on every restart."""

    def sweep(self) -> dict[str, int]:
        raise RuntimeError("relay bug")


def test_a_relay_failing_at_once_backs_off(db_url: str, redis_url: str, run_id: str) -> None:
    """A relay that fails again right after each restart waits longer each time (0.2, 0.4, 0.8, 1.6 s ...)
    instead of restarting and logging a traceback every 0.2 s (about 15 restarts in 3 s before)."""
    from workers.broker import make_broker

    relay = RelayAlwaysRaising(database_url=db_url, broker=make_broker(redis_url), queue_name=f"q_{run_id}",
                               lease_seconds=30, sweep_interval=0.05, retention_days=7)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: relay.restarts >= 1, 30, "the first restart")
        first = relay.restarts
        stop.wait(3.0)  # pauses 0.2 + 0.4 + 0.8 + 1.6 s: at most 4 more restarts (0.2 s each: about 15)
        more = relay.restarts - first
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert more <= 4
