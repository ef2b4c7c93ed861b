"""Connection poolers: what works through them, and refusing a transaction pooler where a session is needed.

A transaction-mode pooler (PgBouncer ``pool_mode = transaction``, Supabase's pooler on port 6543,
Supavisor) hands each transaction of a client connection to whichever server connection is free.
Enqueueing and the workers' job calls work through it: every connection contentforge opens runs
without server-side prepared statements (see :mod:`contentforge.db`). What keeps state in the
server session does not: LISTEN/NOTIFY and the relay's election lock, the scheduler's leader and
task locks, the migration runner's lock and ``lock_timeout``. Those processes call
:func:`require_session` at start and exit with :class:`SessionRequired` instead of misbehaving.

The probe, with two client connections A and B to the same URL:

1. A runs ``pg_backend_pid()`` (server session S1);
2. B opens a transaction and runs ``pg_backend_pid()``, holding its server session;
3. A runs ``pg_backend_pid()`` again.

Directly or through a session pooler, A keeps S1 and B has another session, so B's pid differs
from A's and A's stays the same. Through a transaction pooler, B is given a free server session,
normally S1 that A has just released (both see the same pid), and A then cannot get the session B
holds (A's pid changes): either is proof that consecutive transactions of one connection ran on
different server sessions. Only a pooler that gave B another free session and A its old one again,
by chance, can escape the probe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from contentforge.db import connect, redact
from contentforge.errors import ConfigurationError, DatabaseUnavailable
from contentforge.logging import get_logger

log = get_logger(__name__)

#: The server process of this transaction: it changes between transactions of one connection only
#: behind a transaction-mode pooler. (Inline, not in schema/queries: this module is part of the core,
#: which the schema layer builds on.)
BACKEND_PID = "SELECT pg_backend_pid() AS pid"

#: Longest wait for the probe's two connections and three queries, in seconds. A pooler whose
#: pool is full makes a client wait for a server connection; the probe then gives up and says so
#: (it cannot tell) rather than hold up the process's start for the pooler's own timeout.
PROBE_WAIT_SECONDS = 10.0

Verdict = Literal["session", "transaction", "unknown"]


class SessionRequired(ConfigurationError):
    """A process that needs a PostgreSQL session was pointed at a transaction pooler."""


@dataclass(frozen=True)
class Probe:
    verdict: Verdict
    detail: str


def _pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(BACKEND_PID, prepare=False).fetchone()
    assert row is not None
    return int(row["pid"])


def _probe(url: str) -> Probe:
    with connect(url, autocommit=True, connect_timeout=5) as a:
        first = _pid(a)
        with connect(url, connect_timeout=5) as b:
            other = _pid(b)  # b now holds a transaction, and with it a server session
            if other == first:
                return Probe("transaction", f"two client connections ran on one server session (pid {first})")
            again = _pid(a)
            b.rollback()
        if again != first:
            return Probe("transaction", f"one connection's transactions ran on server sessions {first} and {again}")
    return Probe("session", f"one connection kept server session {first}")


def probe(url: str, wait_seconds: float = PROBE_WAIT_SECONDS) -> Probe:
    """Whether ``url`` gives a connection its own server session (direct, session pooler) or a
    transaction pooler's shared ones. "unknown" when the probe could not finish in time."""
    result: list[Probe] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(_probe(url))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    # A thread, so that a pooler that makes us wait for a server connection cannot hold up the
    # start for its own timeout (PgBouncer's query_wait_timeout is 2 minutes); the thread ends
    # when the pooler gives up on it.
    thread = threading.Thread(target=run, name="cf-pooler-probe", daemon=True)
    thread.start()
    thread.join(wait_seconds)
    if failure:
        exc = failure[0]
        if isinstance(exc, psycopg.OperationalError):
            raise DatabaseUnavailable(f"PostgreSQL at {redact(url)} failed during the session check: "
                                      f"{str(exc).strip()}") from exc
        raise exc
    if not result:
        return Probe("unknown", f"no answer within {wait_seconds:g} s (a pooler with no free server connection?)")
    return result[0]


def require_session(url: str, *, process: str, needs: str, setting: str,
                    stop: threading.Event | None = None) -> Probe:
    """Exit with :class:`SessionRequired` when ``url`` goes through a transaction pooler; else
    return what the probe found (a session, or unknown).

    ``process`` names what is starting (``contentforge scheduler``), ``needs`` what it keeps in the
    session, ``setting`` the variable the URL came from (DATABASE_URL or DATABASE_SESSION_URL).
    Without ``stop``, an unreachable database raises :class:`DatabaseUnavailable`; with it (a
    long-running process that rides out outages), the check is retried until the database answers
    or ``stop`` is set.
    """
    delay = 0.5
    while True:
        try:
            found = probe(url)
            break
        except DatabaseUnavailable as exc:
            if stop is None:
                raise
            log.warning("cannot reach PostgreSQL to check for a transaction pooler; retrying", process=process,
                        error=str(exc).splitlines()[0], retry_in=delay)
            if stop.wait(delay):
                return Probe("unknown", "stopped before PostgreSQL answered")
            delay = min(delay * 2, 5.0)
    if found.verdict == "unknown":
        log.warning("could not check for a transaction pooler; going on", process=process, detail=found.detail)
    if found.verdict != "transaction":
        return found
    raise SessionRequired(
        f"{process} needs a PostgreSQL session of its own ({needs}), but {setting} "
        f"({redact(url)}) goes through a transaction-mode connection pooler: {found.detail}.\n"
        "Set DATABASE_SESSION_URL to a direct connection string or a session-mode pooler (Supabase: "
        "the \"Direct connection\" or \"Session pooler\" string, port 5432; PgBouncer: a pool with "
        "pool_mode = session). Enqueueing and the worker processes may keep the transaction pooler "
        "in DATABASE_URL."
    )

