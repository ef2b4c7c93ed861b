"""The migration runner: ordering, idempotence, checksums, locking, non-transactional files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import psycopg
import pytest

from schema import ChangedMigration, load_migrations, migrate, status
from schema.files import Migration


def test_second_apply_is_a_no_op(fresh_db: str) -> None:
    """Applying twice applies every file once, then nothing."""
    first = migrate(fresh_db)
    assert [m.version for m in first] == [m.version for m in load_migrations()]
    assert migrate(fresh_db) == []
    st = status(fresh_db)
    assert st.up_to_date and st.count("applied") == len(first)


def test_status_reports_pending_before_migrate(fresh_db: str) -> None:
    """An empty database reports every file pending and is not up to date."""
    st = status(fresh_db)
    assert not st.up_to_date
    assert st.count("pending") == len(load_migrations())


def test_changed_applied_file_stops_the_run(fresh_db: str) -> None:
    """Editing an applied migration makes status say 'changed' and migrate refuse to run."""
    files = load_migrations()
    migrate(fresh_db, migrations=files)
    edited = [*files[:-1], Migration(files[-1].version, files[-1].name, files[-1].text + "\n-- edited\n")]
    assert status(fresh_db, migrations=edited).count("changed") == 1
    with pytest.raises(ChangedMigration, match="was changed after it was applied"):
        migrate(fresh_db, migrations=edited)


def test_concurrent_runners_apply_each_file_once(fresh_db: str) -> None:
    """Two runners started together both succeed and the history holds each file once."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(fresh_db)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT version, count(*) FROM contentforge_meta.schema_migrations GROUP BY 1").fetchall()
    assert len(rows) == len(load_migrations()) and all(n == 1 for _, n in rows)


def test_failed_file_rolls_back_and_is_not_recorded(fresh_db: str) -> None:
    """A transactional file that fails leaves neither its objects nor a history row behind."""
    files = [Migration("0001", "good", "CREATE TABLE t_good (id int);"),
             Migration("0002", "bad", "CREATE TABLE t_bad (id int); SELECT 1/0;")]
    with pytest.raises(Exception, match=r"0002_bad\.sql failed: division by zero"):
        migrate(fresh_db, migrations=files)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('t_good') IS NOT NULL").fetchone() == (True,)
        assert conn.execute("SELECT to_regclass('t_bad')").fetchone() == (None,)
        versions = [r[0] for r in conn.execute("SELECT version FROM contentforge_meta.schema_migrations")]
    assert versions == ["0001"]


def test_concurrent_index_file_repairs_an_invalid_leftover(fresh_db: str) -> None:
    """A CONCURRENTLY build that failed earlier left an INVALID index; the re-run rebuilds it valid."""
    setup = Migration("0001", "table", "CREATE TABLE items (v text); INSERT INTO items VALUES ('12.5');")
    migrate(fresh_db, migrations=[setup])
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute("CREATE INDEX CONCURRENTLY items_v_idx ON items ((v::integer))")
        assert conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_v_idx'::regclass").fetchone() == (False,)
        conn.execute("UPDATE items SET v = '12'")
    index = Migration("0002", "index", "-- contentforge:no-transaction\n"
                      "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_v_idx ON items ((v::integer));\n")
    assert not index.transactional
    migrate(fresh_db, migrations=[setup, index])
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_v_idx'::regclass").fetchone() == (True,)


def test_applies_on_supabase_standin_as_its_owner(supabase_db: str) -> None:
    """Every migration applies unchanged as Supabase's non-superuser owner role."""
    from tests.conftest import url_for

    applied = migrate(url_for(supabase_db, user="supabase_admin_standin"))
    assert len(applied) == len(load_migrations())
    with psycopg.connect(url_for(supabase_db)) as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'content'").fetchone()
    assert owner == ("supabase_admin_standin",)


def test_cli_status_json_after_migrate(fresh_db: str) -> None:
    """`contentforge db migrate` then `db status --json` reports every migration applied, exit 0."""
    env = {"DATABASE_URL": fresh_db, "CONTENTFORGE_LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"}
    cli = [sys.executable, "-m", "cli"]
    pending = subprocess.run([*cli, "db", "status", "--json"], env=env, capture_output=True, text=True)
    assert pending.returncode == 4 and json.loads(pending.stdout)["pending"] == len(load_migrations())
    done = subprocess.run([*cli, "db", "migrate"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    st = subprocess.run([*cli, "db", "status", "--json"], env=env, capture_output=True, text=True)
    report = json.loads(st.stdout)
    assert st.returncode == 0 and report["up_to_date"] and report["applied"] == len(load_migrations())


def test_cli_names_the_unreachable_database() -> None:
    """An unreachable DATABASE_URL gives exit code 3 and a message naming the URL, not a traceback."""
    env = {"DATABASE_URL": "postgresql://cf:secret@127.0.0.1:1/nowhere", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "cli", "db", "status"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 3
    assert "postgresql://cf:***@127.0.0.1:1/nowhere" in r.stderr and "secret" not in r.stderr
    assert "Traceback" not in r.stderr
