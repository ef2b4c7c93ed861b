"""Enqueueing through a real PgBouncer in transaction mode: the Python API and plain SQL, many threads."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Callable

import psycopg
from psycopg.types.json import Jsonb

from contentforge import api
from tests import factories as f
from tests.pgbouncer import PgBouncer

#: Calls per thread: psycopg prepares a statement from its fifth run on a connection.
CALLS = 50


def _run_threads(workers: dict[str, Callable[[], None]]) -> list[str]:
    errors: list[str] = []

    def guarded(name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - every failure is collected and asserted on
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=guarded, args=(n, fn)) for n, fn in workers.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_python_and_sql_api_from_threads_through_a_transaction_pooler(
        conn: psycopg.Connection, db_url: str, transaction_pooler: PgBouncer) -> None:
    """Threads enqueueing through PgBouncer (transaction mode) with the Python API (own connection
    or URL) and with SQL (psycopg, psql) get no error, and every job exists exactly once."""
    pooled = transaction_pooler.url(db_url)
    tenant, user = f.tenant(conn), f.user(conn)
    f.member(conn, tenant, user, "author")
    created: dict[str, uuid.UUID] = {}  # idempotency key -> job id returned to the caller
    lock = threading.Lock()

    def record(key: str, job_id: uuid.UUID) -> None:
        with lock:
            assert key not in created
            created[key] = job_id

    def python_own_connection(n: int) -> Callable[[], None]:
        """As the README shows: the upload service's own connection (psycopg defaults), reused."""
        asset = f.asset(conn, tenant, user)

        def work() -> None:
            with psycopg.connect(pooled) as own:
                for i in range(CALLS):
                    key = f"py-conn-{n}-{i}"
                    if i % 10 == 9:
                        jobs = api.enqueue_many(own, asset, ["noop", "thumbnail"], idempotency_key=key,
                                                params={"noop": {"tag": str(i)}, "thumbnail": {"widths": [16 + i]}})
                        for job_type, job_id in jobs.items():
                            record(f"{key}:{job_type}", job_id)
                        last = jobs["noop"]
                    else:
                        last = api.enqueue(own, asset, "noop", {"tag": str(i)}, idempotency_key=key)
                        record(key, last)
                    own.commit()
                    job = api.get_job(own, last)  # reads run through the pooler as well
                    assert job is not None and job["status"] == "pending"
                    own.commit()
        return work

    def python_url(n: int) -> Callable[[], None]:
        asset = f.asset(conn, tenant, user)

        def work() -> None:
            for i in range(CALLS // 5):
                key = f"py-url-{n}-{i}"
                record(key, api.enqueue(pooled, asset, "noop", {"tag": str(i)}, idempotency_key=key))
        return work

    def sql_psycopg(n: int) -> Callable[[], None]:
        """Plain SQL from a client with server-side prepared statements off, as the README asks."""
        asset = f.asset(conn, tenant, user)

        def work() -> None:
            with psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as c:
                for i in range(CALLS):
                    key = f"sql-{n}-{i}"
                    if i % 10 == 9:
                        for job_type, job_id in c.execute(
                                "SELECT * FROM enqueue_asset_jobs(%s, ARRAY['noop', 'thumbnail'], %s, "
                                "idempotency_key => %s)",
                                (asset, Jsonb({"noop": {"tag": str(i)}, "thumbnail": {"widths": [16 + i]}}), key)):
                            record(f"{key}:{job_type}", job_id)
                    else:
                        row = c.execute("SELECT enqueue_asset_job(asset_id => %s, job_type => 'noop', "
                                        "params => %s, idempotency_key => %s)", (asset, Jsonb({"tag": str(i)}), key))
                        record(key, row.fetchone()[0])
        return work

    def sql_psql() -> None:
        """psql, one statement (one transaction) per line, as a shell or another language would."""
        asset = f.asset(conn, tenant, user)
        script = "".join(
            f"SELECT 'psql-{i}', enqueue_asset_job(asset_id => '{asset}', job_type => 'noop', "
            f"params => '{{\"tag\": \"{i}\"}}', idempotency_key => 'psql-{i}');\n" for i in range(CALLS))
        out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-F", " ", "-d", pooled],
                             input=script, capture_output=True, text=True, timeout=120, check=True)
        for line in out.stdout.splitlines():
            key, job_id = line.split(" ")
            record(key, uuid.UUID(job_id))

    workers: dict[str, Callable[[], None]] = {}
    for n in range(4):
        workers[f"python, own connection {n}"] = python_own_connection(n)
    for n in range(2):
        workers[f"python, URL {n}"] = python_url(n)
    for n in range(3):
        workers[f"SQL via psycopg {n}"] = sql_psycopg(n)
    workers["SQL via psql"] = sql_psql

    errors = _run_threads(workers)

    assert errors == []
    per_call = {"own": 4 * (CALLS + CALLS // 10), "url": 2 * (CALLS // 5), "sql": 3 * (CALLS + CALLS // 10),
                "psql": CALLS}
    expected = sum(per_call.values())
    assert len(created) == expected
    rows = conn.execute("SELECT id, idempotency_key FROM asset_processing_jobs WHERE tenant_id = %s",
                        (tenant,)).fetchall()
    assert len(rows) == expected
    assert {r["idempotency_key"]: r["id"] for r in rows} == created

