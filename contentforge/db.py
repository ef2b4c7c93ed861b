"""Connections to PostgreSQL, with errors a person can act on.

Every connection contentforge opens goes through :func:`open_connection`, which turns off
psycopg's server-side prepared statements (``prepare_threshold=None``): a transaction-mode pooler
(PgBouncer, Supabase's port 6543) runs each transaction on whichever server connection is free,
where a statement prepared on another one does not exist, or one of the same name already does.
Statements are still sent with the extended protocol, unnamed and with bound parameters; the cost,
measured on a direct connection, is in bench/RESULTS.md ("Connection poolers"). Only the worker
processes' connections, the hot path of the queue, prepare statements, and only when
``CONTENTFORGE_WORKER_PREPARED_STATEMENTS`` is on (``auto``: when their URL proved to be a session).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from contentforge.errors import DatabaseUnavailable
from contentforge.redaction import redact

#: With server-side prepared statements on (the worker processes' connections on a direct or
#: session-mode connection), a statement is prepared from its fifth run, psycopg's default.
PREPARED_AFTER_RUNS = 5


def open_connection(url: str, *, autocommit: bool = False, prepare_threshold: int | None = None,
                    **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a connection whose rows are dicts and that, unless ``prepare_threshold`` says otherwise,
    never prepares statements on the server (so it works through a transaction pooler); psycopg's
    errors pass through."""
    return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row, prepare_threshold=prepare_threshold,
                           **kwargs)


def connect(url: str, *, autocommit: bool = False, **kwargs: Any) -> psycopg.Connection[Any]:
    """:func:`open_connection`, raising DatabaseUnavailable with advice when it fails."""
    try:
        return open_connection(url, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {redact(url)}: {first}\n"
            "Check that the server is running and reachable, and that DATABASE_URL names the right "
            "host, port, database and user (unset DATABASE_URL to use the embedded PostgreSQL)."
        ) from exc


def one(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> dict[str, Any]:
    """The single row a query must return (a function call, an aggregate); LookupError if none."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise LookupError(f"query returned no row: {str(query)[:80]}")
    return row
