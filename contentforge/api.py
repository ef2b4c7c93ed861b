"""The public Python API of the job queue, for upload services.

Each call is a thin wrapper over one SQL function of the queue (migration 0005), so Python callers
follow exactly the rules that SQL-only callers do: the job type must fit the asset's file type,
an API caller needs author rights in the asset's tenant, and the same idempotency key returns the
same job. Pass either a connection URL or an open psycopg connection; with a connection, the call
runs in its transaction (commit it to make the job visible: workers are woken at commit). Calls
never prepare statements on the server, whatever the connection's ``prepare_threshold``, so a
connection through a transaction pooler (PgBouncer, Supabase's port 6543) works too::

    from contentforge import api

    job_id = api.enqueue(url, asset_id, "thumbnail", {"widths": [320]}, idempotency_key="upload-42")
    jobs = api.enqueue_many(url, asset_id, ["metadata", "thumbnail"])   # {"metadata": UUID, ...}
    api.get_job(url, job_id)["status"]                                  # "pending", "running", ...
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from contentforge.db import connect
from schema.named_queries import queries

ConnOrUrl = psycopg.Connection[Any] | str


@contextlib.contextmanager
def _connection(conn_or_url: ConnOrUrl) -> Iterator[psycopg.Connection[Any]]:
    if isinstance(conn_or_url, str):
        with connect(conn_or_url) as conn:  # commits on a clean exit
            yield conn
    else:
        yield conn_or_url


def _one(conn_or_url: ConnOrUrl, name: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    with _connection(conn_or_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(queries("queue")[name], params, prepare=False)
        return cur.fetchone()


def enqueue(
    conn_or_url: ConnOrUrl,
    asset_id: uuid.UUID | str,
    job_type: str,
    params: Mapping[str, Any] | None = None,
    priority: int | None = None,
    run_after: datetime | None = None,
    idempotency_key: str | None = None,
) -> uuid.UUID:
    """Queue one job for an asset and return its id.

    ``priority`` runs from 1 (lowest) to 10 (highest). Called as an operator (a direct database
    login, service_role) it is the job's fleet-wide priority, and None takes the job type's
    (``app_private.job_types.priority``); called through the API (anon, authenticated) it only
    orders this tenant's own jobs (README, "Priority"). ``run_after`` delays the job. A job with the
    same asset, type and parameters that is still pending or running is returned instead of a new
    one, and so is the job created earlier with the same ``idempotency_key`` (per tenant).
    Raises ``psycopg.Error`` with a readable message when the asset does not exist or the API
    caller cannot see it (SQLSTATE PT404, PostgREST's HTTP 404), the job type does not fit the
    asset's file type, a parameter breaks the job type's schema or a value is out of range (22023),
    or the caller may see the asset but not process it (42501).
    """
    row = _one(conn_or_url, "enqueue", {
        "asset_id": asset_id, "job_type": job_type, "params": Jsonb(dict(params or {})),
        "priority": priority, "run_after": run_after, "idempotency_key": idempotency_key,
    })
    assert row is not None
    return cast(uuid.UUID, row["job_id"])


def enqueue_many(
    conn_or_url: ConnOrUrl,
    asset_id: uuid.UUID | str,
    job_types: Sequence[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    priority: int | None = None,
    run_after: datetime | None = None,
    idempotency_key: str | None = None,
) -> dict[str, uuid.UUID]:
    """Queue several job types for one asset in one call (the usual "process this upload").

    ``params`` maps a job type to its parameters (``{"thumbnail": {"widths": [320]}}``); types not
    named get ``{}``. ``idempotency_key`` becomes ``<key>:<job type>`` for each job. Returns
    ``{job type: job id}``; all jobs are created, or none (one statement).
    """
    with _connection(conn_or_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(queries("queue")["enqueue_many"], {
            "asset_id": asset_id, "job_types": list(job_types),
            "params": Jsonb({k: dict(v) for k, v in (params or {}).items()}),
            "priority": priority, "run_after": run_after, "idempotency_key": idempotency_key,
        }, prepare=False)
        return {r["job_type"]: r["job_id"] for r in cur.fetchall()}


def cancel(conn_or_url: ConnOrUrl, job_id: uuid.UUID | str) -> bool:
    """Cancel a pending or running job; False when it had already finished.

    A running job's worker notices at its next heartbeat, stops it and discards its result.
    """
    row = _one(conn_or_url, "cancel", {"job_id": job_id})
    return bool(row and row["changed"])


def retry(conn_or_url: ConnOrUrl, job_id: uuid.UUID | str) -> bool:
    """Put a failed or cancelled job back in the queue with fresh attempts; False otherwise."""
    row = _one(conn_or_url, "retry", {"job_id": job_id})
    return bool(row and row["changed"])


def set_test_job_types(conn_or_url: ConnOrUrl, enabled: bool) -> None:
    """Turn the test-only job types (``noop``) on or off in this database (an operator's switch:
    tests, benchmarks and soak runs turn them on; production leaves them off)."""
    with _connection(conn_or_url) as conn:
        conn.execute(queries("queue")["set_test_job_types"], {"enabled": enabled})


def get_job(conn_or_url: ConnOrUrl, job_id: uuid.UUID | str) -> dict[str, Any] | None:
    """The job's row as a dict (status, progress, error_message, output_data, ...), or None."""
    return _one(conn_or_url, "get_job", {"job_id": job_id})


def list_jobs(
    conn_or_url: ConnOrUrl,
    *,
    tenant_id: uuid.UUID | str | None = None,
    status: str | None = None,
    job_type: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest jobs first, filtered by tenant, status and job type."""
    with _connection(conn_or_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(queries("queue")["list_jobs"], {
            "tenant_id": tenant_id, "status": status, "job_type": job_type, "limit": limit,
        }, prepare=False)
        return cur.fetchall()
