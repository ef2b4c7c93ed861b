"""The scheduler's tasks, its run history, its once-per-due-time guard and its command line."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from contentforge.settings import Settings
from scheduler import schedules
from scheduler.runner import lock_key, run_task
from scheduler.service import SchedulerService
from tests import factories as f

UTC = dt.UTC


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, scheduler_standby_poll_seconds=0.3)


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    (tmp_path / "storage").mkdir()
    return (tmp_path / "storage").as_uri()


@pytest.fixture
def owner(conn):
    t, u = f.tenant(conn), f.user(conn)
    f.member(conn, t, u, "owner")
    return t, u


def test_publish_publishes_due_content_at_its_scheduled_time(conn, db_url, settings, storage_url, owner) -> None:
    """Due content is published with published_at = scheduled_for and a change entry; future content waits."""
    t, u = owner
    due_at = dt.datetime.now(UTC) - dt.timedelta(hours=3)
    due = f.content(conn, t, u, status="scheduled", scheduled_for=due_at)
    later = f.content(conn, t, u, status="scheduled", scheduled_for=dt.datetime.now(UTC) + dt.timedelta(hours=1))
    leaving = f.content(conn, t, u, unpublish_at=dt.datetime.now(UTC) - dt.timedelta(minutes=1))
    out = run_task(db_url, settings, "publish", storage_url=storage_url)
    assert out.outcome == "succeeded" and out.details == {"published": 1, "archived": 1}
    row = conn.execute("SELECT status, published_at FROM content WHERE id = %s", (due,)).fetchone()
    assert row["status"] == "published" and abs((row["published_at"] - due_at).total_seconds()) < 0.001
    assert conn.execute("SELECT status FROM content WHERE id = %s", (later,)).fetchone()["status"] == "scheduled"
    assert conn.execute("SELECT status FROM content WHERE id = %s", (leaving,)).fetchone()["status"] == "archived"
    assert conn.execute("SELECT change_type FROM content_changes WHERE content_id = %s ORDER BY created_at DESC",
                        (due,)).fetchone()["change_type"] == "publish"
    again = run_task(db_url, settings, "publish", storage_url=storage_url)
    assert again.outcome == "succeeded" and again.rows == 0


def test_every_run_is_recorded(conn, db_url, settings, storage_url) -> None:
    """Each run leaves a history row with trigger, times, outcome and rows."""
    run_task(db_url, settings, "sessions", storage_url=storage_url)
    row = conn.execute("SELECT * FROM app_private.scheduler_runs").fetchone()
    assert (row["task"], row["trigger"], row["outcome"]) == ("sessions", "manual", "succeeded")
    assert row["finished_at"] >= row["started_at"] and row["rows_affected"] == 0


def test_a_due_time_runs_once(db_url, settings, storage_url) -> None:
    """Two runs for the same due time: the second is skipped (a failover never repeats it)."""
    due = dt.datetime(2030, 1, 1, 2, tzinfo=UTC)
    first = run_task(db_url, settings, "sessions", trigger="schedule", due_at=due, storage_url=storage_url)
    second = run_task(db_url, settings, "sessions", trigger="schedule", due_at=due, storage_url=storage_url)
    assert (first.outcome, second.outcome) == ("succeeded", "skipped")


def test_a_running_task_is_not_started_twice(db_url, settings, storage_url) -> None:
    """While another session holds a task, a run of it is skipped."""
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("analytics"),))
        out = run_task(db_url, settings, "analytics", storage_url=storage_url)
    assert out.outcome == "skipped"


def test_analytics_refresh_empty_then_populated(conn, db_url, settings, storage_url, owner) -> None:
    """The first refresh of the never-populated view is full, the next concurrent, with right counts."""
    t, u = owner
    first = run_task(db_url, settings, "analytics", storage_url=storage_url)
    c = f.content(conn, t, u)
    conn.execute("SELECT track_engagement(%s, 'view', p_session_id => 's')", (c,))
    second = run_task(db_url, settings, "analytics", storage_url=storage_url)
    assert (first.details, second.details) == ({"mode": "full"}, {"mode": "concurrent"})
    assert conn.execute("SELECT total_views FROM content_performance(%s)", (t,)).fetchone()["total_views"] == 1


def test_partitions_kept_ahead_and_expired_ones_dropped(conn, db_url, settings, storage_url) -> None:
    """Partitions exist months ahead; a month past the retention is dropped, recent ones stay."""
    conn.execute("SET TimeZone = 'Asia/Kolkata'")
    conn.execute("SELECT * FROM app_private.ensure_engagement_partitions(0, '2020-06-15 UTC')")
    settings.partition_months_ahead = 5
    out = run_task(db_url, settings, "partitions", storage_url=storage_url)
    assert out.outcome == "succeeded"
    assert out.details["dropped"] == ["content_engagement_y2020m06"] and len(out.details["created"]) == 2
    names = {r["relname"] for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'content_engagement'::regclass")}
    now = dt.datetime.now(UTC)
    this_month = f"content_engagement_y{now:%Y}m{now:%m}"
    assert this_month in names and "content_engagement_y2020m06" not in names and len(names) == 7


def test_nightly_removes_unused_failed_assets_with_their_files(conn, db_url, settings, storage_url, owner) -> None:
    """Nightly deletes an old failed asset nothing uses and its files; covers and block assets stay."""
    from contentforge.storage import open_storage

    t, u = owner
    storage = open_storage(storage_url)
    src = Path(storage_url.removeprefix("file://")).parent / "blob"
    src.write_bytes(b"x")
    ids = {}
    for name in ("unused", "cover", "in_block"):
        aid = f.asset(conn, t, u, processing_status="failed", storage_path=f"{t}/{name}/original.jpg")
        conn.execute("UPDATE assets SET variants = jsonb_build_object('thumb_160.webp', jsonb_build_object('key', %s::text)) "
                     "WHERE id = %s", (f"{t}/{aid}/variants/thumb_160.webp", aid))
        storage.put_file(f"{t}/{name}/original.jpg", src)
        storage.put_file(f"{t}/{aid}/variants/thumb_160.webp", src)
        ids[name] = aid
    f.insert(conn, "content_collections", tenant_id=t, creator_id=u, name="c", slug="c", collection_type="course",
             cover_asset_id=ids["cover"])
    f.content(conn, t, u, blocks=[{"type": "image", "asset_id": str(ids["in_block"])}])
    conn.execute("SET session_replication_role = replica")
    conn.execute("UPDATE assets SET status_changed_at = now() - interval '30 days'")
    conn.execute("RESET session_replication_role")
    out = run_task(db_url, settings, "nightly", storage_url=storage_url)
    assert out.outcome == "succeeded", out.error
    assert out.details["assets_removed"] == 1 and out.details["vacuumed"]
    left = {r["id"] for r in conn.execute("SELECT id FROM assets")}
    assert left == {ids["cover"], ids["in_block"]}
    assert not storage.exists(f"{t}/unused/original.jpg")
    assert not storage.exists(f"{t}/{ids['unused']}/variants/thumb_160.webp")
    assert storage.exists(f"{t}/cover/original.jpg") and storage.exists(f"{t}/{ids['in_block']}/variants/thumb_160.webp")


def test_catch_up_runs_a_missed_due_time_once(conn, db_url, settings, storage_url) -> None:
    """After downtime, a cron task whose due time passed runs once on start, and not again."""
    settings.schedule_nightly = "0 2 * * *"
    two_days_ago = dt.datetime.now(UTC) - dt.timedelta(days=2)
    conn.execute("INSERT INTO app_private.scheduler_runs (task, trigger, due_at, started_at, finished_at, outcome) "
                 "VALUES ('nightly', 'schedule', %s, %s, %s, 'succeeded')", (two_days_ago, two_days_ago, two_days_ago))
    svc = SchedulerService(db_url, settings, storage_url)
    svc.catch_up()
    svc.catch_up()
    rows = conn.execute("SELECT trigger, due_at FROM app_private.scheduler_runs WHERE task = 'nightly' "
                        "AND trigger = 'catch-up'").fetchall()
    expected = schedules.latest_due(svc.triggers["nightly"], two_days_ago, dt.datetime.now(UTC))
    assert [r["due_at"] for r in rows] == [expected]


def test_latest_due_across_a_year_boundary() -> None:
    """The latest due time of a monthly cron across New Year is January's."""
    trig = schedules.parse("0 0 1 * *")
    now = dt.datetime(2031, 1, 10, tzinfo=UTC)
    assert schedules.latest_due(trig, dt.datetime(2030, 12, 5, tzinfo=UTC), now) == dt.datetime(2031, 1, 1, tzinfo=UTC)
    assert schedules.latest_due(trig, dt.datetime(2031, 1, 2, tzinfo=UTC), now) is None


def test_bad_schedule_is_a_clear_error() -> None:
    """A malformed schedule names the accepted forms."""
    from contentforge.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=re.escape("every <N>s|m|h")):
        schedules.parse("every day")


def _cli(db_url: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "CONTENTFORGE_LOG_FORMAT": "json", **extra}
    return subprocess.run([sys.executable, "-m", "cli", "scheduler", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_manual_run_exit_codes(conn, db_url, tmp_path) -> None:
    """`scheduler run` exits 0 on success, 1 on failure (recorded), 75 while another run holds the task."""
    ok = _cli(db_url, "run", "publish", CONTENTFORGE_DATA_DIR=str(tmp_path))
    assert ok.returncode == 0 and ok.stdout.startswith("publish: succeeded"), ok.stderr
    conn.execute("ALTER FUNCTION app_private.publish_due_content(integer) RENAME TO publish_gone")
    bad = _cli(db_url, "run", "publish", CONTENTFORGE_DATA_DIR=str(tmp_path))
    assert bad.returncode == 1 and "publish: failed" in bad.stdout
    assert conn.execute("SELECT outcome FROM app_private.scheduler_runs ORDER BY id DESC").fetchone()["outcome"] == "failed"
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("sessions"),))
        busy = _cli(db_url, "run", "sessions", CONTENTFORGE_DATA_DIR=str(tmp_path))
    assert busy.returncode == 75
    listing = _cli(db_url, "list", "--json", CONTENTFORGE_DATA_DIR=str(tmp_path))
    assert listing.returncode == 0 and '"last_outcome": "failed"' in listing.stdout


@pytest.mark.slow
def test_one_active_scheduler_and_takeover(conn, db_url, tmp_path) -> None:
    """Of two scheduler processes one is active; when it is killed the other takes over."""
    env = {**os.environ, "DATABASE_URL": db_url, "CONTENTFORGE_LOG_FORMAT": "json",
           "CONTENTFORGE_DATA_DIR": str(tmp_path), "CONTENTFORGE_SCHEDULER_STANDBY_POLL_SECONDS": "0.5",
           "CONTENTFORGE_SCHEDULE_PUBLISH": "every 1s"}
    procs = [subprocess.Popen([sys.executable, "-m", "cli", "scheduler"], env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        def publish_runs_by_pid() -> dict[int, int]:
            return {r["pid"]: r["n"] for r in conn.execute(
                "SELECT pid, count(*) AS n FROM app_private.scheduler_runs WHERE task = 'publish' GROUP BY pid")}

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(publish_runs_by_pid().values()) < 3:
            time.sleep(0.2)
        runs = publish_runs_by_pid()
        assert len(runs) == 1, runs
        active = next(p for p in procs if p.pid in runs)
        standby = next(p for p in procs if p is not active)
        active.send_signal(signal.SIGKILL)
        active.wait(10)
        # The standby must take over well within the promised minute: it is given 20 s.
        killed_at = time.monotonic()
        while time.monotonic() < killed_at + 20 and standby.pid not in publish_runs_by_pid():
            time.sleep(0.2)
        assert standby.pid in publish_runs_by_pid()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
            if p.stderr:
                p.stderr.close()


def test_storage_task_sweeps_output_files_no_row_points_at(conn, db_url, settings, storage_url, owner) -> None:
    """The storage task removes a losing attempt's file past the grace and keeps the one the asset names."""
    import uuid

    from contentforge.output_keys import output_key
    from contentforge.storage import open_storage

    t, u = owner
    storage = open_storage(storage_url)
    src = Path(storage_url.removeprefix("file://")).parent / "blob"
    src.write_bytes(b"x")
    aid = f.asset(conn, t, u)
    current, lost = output_key(t, aid, uuid.uuid4(), "thumb_160.webp"), output_key(t, aid, uuid.uuid4(), "thumb_160.webp")
    conn.execute("UPDATE assets SET variants = jsonb_build_object('thumb_160.webp', jsonb_build_object('key', %s::text)) "
                 "WHERE id = %s", (current, aid))
    for key in (current, lost):
        storage.put_file(key, src)
    settings.storage_sweep_grace_seconds = 0
    out = run_task(db_url, settings, "storage", storage_url=storage_url)
    assert out.outcome == "succeeded", out.error
    assert out.rows == 1 and out.details["in_use"] == 1
    assert storage.list(f"{t}/{aid}") == [current]
