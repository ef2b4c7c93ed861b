"""Applies pending migrations safely and reports the schema's state.

- Each file runs in its own transaction, except files marked non-transactional, which run one
  statement at a time in autocommit; a CREATE INDEX CONCURRENTLY whose earlier build left an INVALID
  index drops that leftover first.
- A history table records each applied file's checksum; a changed applied file stops the run.
- Concurrent runners are serialised by a session advisory lock taken with try-and-wait (a blocking
  lock could deadlock with a concurrent index build's wait for old snapshots).
- ``lock_timeout`` bounds how long any DDL waits for a table lock held by the application.
- The lock and ``lock_timeout`` live in the session: a URL that goes through a transaction pooler
  is refused at start (:func:`contentforge.pooler.require_session`), since through one neither
  would hold and concurrent runners would no longer wait for each other.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from contentforge.db import connect
from contentforge.errors import ContentforgeError
from schema.files import Migration, load_migrations

#: Advisory lock key that serialises migration runners (arbitrary, fixed: "cfmigrat").
MIGRATION_LOCK_KEY = 0x63666D6967726174

HISTORY_DDL = """
CREATE SCHEMA IF NOT EXISTS contentforge_meta;
REVOKE ALL ON SCHEMA contentforge_meta FROM PUBLIC;
CREATE TABLE IF NOT EXISTS contentforge_meta.schema_migrations (
  version      text PRIMARY KEY,
  name         text NOT NULL,
  checksum     text NOT NULL,
  applied_at   timestamptz NOT NULL DEFAULT now(),
  execution_ms integer NOT NULL
);
ALTER TABLE contentforge_meta.schema_migrations ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON contentforge_meta.schema_migrations FROM PUBLIC;
"""

_CONCURRENT_INDEX = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE
)


class MigrationError(ContentforgeError):
    exit_code = 4


class ChangedMigration(MigrationError):
    """An applied migration file no longer matches what was applied."""


class MigrationLockTimeout(MigrationError):
    """Another runner held the migration lock for longer than we were willing to wait."""


@dataclass(frozen=True)
class MigrationState:
    version: str
    name: str
    state: str  # applied | pending | changed | unknown
    applied_at: str | None = None
    checksum: str | None = None


@dataclass
class Status:
    migrations: list[MigrationState] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(1 for m in self.migrations if m.state == state)

    @property
    def up_to_date(self) -> bool:
        return self.count("pending") == 0 and self.count("changed") == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "up_to_date": self.up_to_date,
            "applied": self.count("applied"),
            "pending": self.count("pending"),
            "changed": self.count("changed"),
            "unknown": self.count("unknown"),
            "migrations": [m.__dict__ for m in self.migrations],
        }


def _history(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    exists = conn.execute(
        "SELECT to_regclass('contentforge_meta.schema_migrations') IS NOT NULL AS e"
    ).fetchone()
    if not exists or not exists["e"]:
        return {}
    rows = conn.execute(
        "SELECT version, name, checksum, applied_at FROM contentforge_meta.schema_migrations"
    ).fetchall()
    return {r["version"]: r for r in rows}


def status(url: str, migrations: list[Migration] | None = None) -> Status:
    """Compare the shipped files with the history table; read-only."""
    migrations = migrations if migrations is not None else load_migrations()
    with connect(url, autocommit=True) as conn:
        history = _history(conn)
    out = Status()
    for m in migrations:
        row = history.pop(m.version, None)
        if row is None:
            out.migrations.append(MigrationState(m.version, m.name, "pending"))
        else:
            state = "applied" if row["checksum"] == m.checksum else "changed"
            out.migrations.append(
                MigrationState(m.version, m.name, state, row["applied_at"].isoformat(), row["checksum"])
            )
    for version, row in sorted(history.items()):
        out.migrations.append(
            MigrationState(version, row["name"], "unknown", row["applied_at"].isoformat(), row["checksum"])
        )
    return out


def _acquire_lock(conn: psycopg.Connection[Any], wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        got = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (MIGRATION_LOCK_KEY,)).fetchone()
        if got and got["ok"]:
            return
        if time.monotonic() >= deadline:
            raise MigrationLockTimeout(
                f"another `contentforge db migrate` held the migration lock for over {wait_seconds:g} s; "
                "wait for it to finish, or look for a stuck session in pg_stat_activity"
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _repair_invalid_index(conn: psycopg.Connection[Any], statement: str) -> None:
    m = _CONCURRENT_INDEX.search(statement)
    if not m:
        return
    row = conn.execute(
        """SELECT n.nspname, c.relname FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relname = %s AND NOT i.indisvalid AND n.nspname = ANY (current_schemas(false))""",
        (m.group(1),),
    ).fetchone()
    if row:
        conn.execute(
            sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
                sql.Identifier(row["nspname"]), sql.Identifier(row["relname"])
            )
        )


def _apply_one(conn: psycopg.Connection[Any], m: Migration) -> int:
    started = time.monotonic()
    try:
        if m.transactional:
            with conn.transaction():
                conn.execute(m.text)  # type: ignore[arg-type]  # a whole, trusted, shipped file
                elapsed = int((time.monotonic() - started) * 1000)
                _record(conn, m, elapsed)
            return elapsed
        for statement in m.statements():
            _repair_invalid_index(conn, statement)
            conn.execute(statement)  # type: ignore[arg-type]
        elapsed = int((time.monotonic() - started) * 1000)
        _record(conn, m, elapsed)
        return elapsed
    except psycopg.Error as exc:
        diag = exc.diag
        where = f" ({diag.context.strip().splitlines()[0]})" if diag and diag.context else ""
        raise MigrationError(f"migration {m.filename} failed: {str(exc).strip()}{where}") from exc


def _record(conn: psycopg.Connection[Any], m: Migration, elapsed_ms: int) -> None:
    conn.execute(
        """INSERT INTO contentforge_meta.schema_migrations (version, name, checksum, execution_ms)
           VALUES (%s, %s, %s, %s)""",
        (m.version, m.name, m.checksum, elapsed_ms),
    )


def migrate(
    url: str,
    *,
    migrations: list[Migration] | None = None,
    lock_wait_seconds: float = 300.0,
    lock_timeout: str = "10s",
    on_applied: Callable[[Migration, int], None] | None = None,
    setting: str = "DATABASE_URL",
) -> list[Migration]:
    """Apply every pending migration in order; return those applied (none when up to date).

    ``setting`` names where ``url`` came from, for the message when it is a transaction pooler.
    """
    from contentforge.pooler import require_session

    migrations = migrations if migrations is not None else load_migrations()
    require_session(url, process="`contentforge db migrate`", setting=setting,
                    needs="an advisory lock that makes concurrent runners wait, and lock_timeout")
    applied: list[Migration] = []
    with connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(lock_timeout)))
        _acquire_lock(conn, lock_wait_seconds)
        try:
            conn.execute(HISTORY_DDL)
            history = _history(conn)
            for m in migrations:
                row = history.get(m.version)
                if row is not None:
                    if row["checksum"] != m.checksum:
                        raise ChangedMigration(
                            f"migration {m.filename} was changed after it was applied "
                            f"(applied checksum {row['checksum'][:12]}, file now {m.checksum[:12]}); "
                            "applied migrations must never be edited: restore the file and add a new one"
                        )
                    continue
                elapsed = _apply_one(conn, m)
                applied.append(m)
                if on_applied:
                    on_applied(m, elapsed)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied
