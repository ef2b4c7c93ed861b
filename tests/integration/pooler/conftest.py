"""Fixtures for the connection-pooler tests: a real PgBouncer in each pool mode, started once per run.

Both poolers sit in front of the test PostgreSQL (TEST_DATABASE_URL) on loopback; ``bouncer.url(db_url)``
turns a test database's URL into the same database through the pooler. The transaction pool is
smaller than the number of client threads the tests use, so consecutive transactions of one client
connection really do land on different server connections.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgbouncer import PgBouncer, pgbouncer

#: Server connections per database and user in the transaction pool: fewer than the tests' threads.
TRANSACTION_POOL_SIZE = 4


@pytest.fixture(scope="session")
def transaction_pooler() -> Iterator[PgBouncer]:
    """PgBouncer with pool_mode = transaction (as Supabase's port 6543)."""
    with pgbouncer("transaction", os.environ["TEST_DATABASE_URL"], pool_size=TRANSACTION_POOL_SIZE) as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
def session_pooler() -> Iterator[PgBouncer]:
    """PgBouncer with pool_mode = session (as Supabase's session pooler)."""
    with pgbouncer("session", os.environ["TEST_DATABASE_URL"]) as bouncer:
        yield bouncer


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `contentforge` subprocess: only what the test sets, plus PATH and the like."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CONTENTFORGE_") and k not in ("DATABASE_URL", "DATABASE_SESSION_URL")}
    env.update({"DATABASE_URL": database_url, "CONTENTFORGE_LOG_FORMAT": "json", "CONTENTFORGE_METRICS_PORT": "0"})
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `contentforge ARGS` to completion (the timeout only guards against a hang)."""
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def running(*args: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running `contentforge ARGS` (worker, scheduler), output to ``log``; SIGTERM at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cli", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
