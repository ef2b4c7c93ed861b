"""Acting as an API caller the way PostgREST does: log in as authenticator, SET ROLE, set the JWT."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row


@contextlib.contextmanager
def api(db_url: str, user_id: uuid.UUID | None = None, role: str | None = None) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection acting as ``authenticated`` for user_id, or as ``anon`` without one."""
    info = psycopg.conninfo.conninfo_to_dict(db_url)
    info["user"] = "authenticator"
    with psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True, row_factory=dict_row) as conn:
        role = role or ("authenticated" if user_id else "anon")
        conn.execute(f"SET ROLE {role}")  # role is one of three fixed names
        if user_id:
            claims = json.dumps({"sub": str(user_id), "role": role})
            conn.execute("SELECT set_config('request.jwt.claims', %s, false)", (claims,))
        yield conn


def attempt(conn: psycopg.Connection[Any], query: str, params: Any = None) -> int | str:
    """Run a write; return the rows it affected, or the SQLSTATE class of its error ('42' = denied)."""
    try:
        with conn.transaction():
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.rowcount
    except psycopg.Error as exc:
        return (exc.sqlstate or "??")[:2]
