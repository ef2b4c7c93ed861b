"""Shared fixtures: real PostgreSQL and Redis, a fresh database per test run.

The run builds one template database from the migrations, then each test that asks for ``db_url``
gets its own copy (CREATE DATABASE ... TEMPLATE, a few tens of ms), dropped afterwards. Nothing is
mocked: set TEST_DATABASE_URL (an admin URL to any database of the cluster) and TEST_REDIS_URL to
point the tests elsewhere.
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

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SUPABASE_DIR = Path(__file__).resolve().parents[2] / "shared" / "supabase"
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
