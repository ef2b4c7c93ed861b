"""Connections to PostgreSQL, with errors a person can act on."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from contentforge.errors import DatabaseUnavailable
from contentforge.redaction import redact


def connect(url: str, *, autocommit: bool = False, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a connection whose rows are dicts; raise DatabaseUnavailable with advice on failure."""
    try:
        return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row, **kwargs)
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
