"""Defect 36: analytics built from daily rollups, which agree with the raw events, are computed
incrementally, and outlive the raw partitions."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import psycopg
import pytest

from tests import factories as f

COUNTED = ["view", "like", "share", "bookmark", "comment", "completion"]
COLUMNS = ["total_views", "unique_views", "likes", "shares", "bookmarks", "comments", "completions",
           "views_last_7_days", "views_last_30_days", "last_activity"]


@pytest.fixture
def tenant(conn: psycopg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    t, u = f.tenant(conn), f.user(conn)
    f.member(conn, t, u, "owner")
    return t, u


def _event(conn: psycopg.Connection, tenant_id: uuid.UUID, content_id: uuid.UUID, event: str, at: dt.datetime,
           user_id: uuid.UUID | None = None, session: str | None = None) -> None:
    conn.execute("INSERT INTO content_engagement (tenant_id, content_id, user_id, session_id, event_type, "
                 "idempotency_key, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (tenant_id, content_id, user_id, session, event, uuid.uuid4().hex, at))


def _from_raw(conn: psycopg.Connection, tenant_id: uuid.UUID) -> dict[uuid.UUID, dict]:
    """What the view must say, computed straight from the raw events (recency in whole UTC days)."""
    rows = conn.execute("""
        SELECT e.content_id,
               count(*) FILTER (WHERE event_type = 'view') AS total_views,
               count(DISTINCT coalesce(user_id::text, session_id)) FILTER (WHERE event_type = 'view') AS unique_views,
               count(*) FILTER (WHERE event_type = 'like') AS likes,
               count(*) FILTER (WHERE event_type = 'share') AS shares,
               count(*) FILTER (WHERE event_type = 'bookmark') AS bookmarks,
               count(*) FILTER (WHERE event_type = 'comment') AS comments,
               count(*) FILTER (WHERE event_type = 'completion') AS completions,
               count(*) FILTER (WHERE event_type = 'view' AND (created_at AT TIME ZONE 'UTC')::date
                                > (now() AT TIME ZONE 'UTC')::date - 7) AS views_last_7_days,
               count(*) FILTER (WHERE event_type = 'view' AND (created_at AT TIME ZONE 'UTC')::date
                                > (now() AT TIME ZONE 'UTC')::date - 30) AS views_last_30_days,
               max(created_at) AS last_activity
        FROM content_engagement e WHERE e.tenant_id = %s GROUP BY e.content_id""", (tenant_id,)).fetchall()
    return {r.pop("content_id"): r for r in rows}


def _from_view(conn: psycopg.Connection, tenant_id: uuid.UUID) -> dict[uuid.UUID, dict]:
    rows = conn.execute("SELECT * FROM content_performance(%s) WHERE last_activity IS NOT NULL", (tenant_id,))
    return {r["content_id"]: {k: r[k] for k in COLUMNS} for r in rows.fetchall()}


def test_view_from_rollups_equals_the_raw_events(conn, tenant) -> None:
    """Random events over 60 days (users, sessions, every type) give the same figures as the raw
    events, after the first roll-up and after an incremental one with late events."""
    t, u = tenant
    rng = random.Random(36)
    contents = [f.content(conn, t, u) for _ in range(5)]
    users = [f.user(conn) for _ in range(4)]
    now = dt.datetime.now(dt.UTC)

    def add(n: int, max_age_hours: float) -> None:
        for _ in range(n):
            at = now - dt.timedelta(hours=rng.uniform(0, max_age_hours))
            who = rng.choice([{"user_id": rng.choice(users)}, {"session": f"s{rng.randint(1, 6)}"}])
            _event(conn, t, rng.choice(contents), rng.choice([*COUNTED, "view", "view"]), at, **who)

    add(400, 60 * 24)
    conn.execute("SELECT app_private.refresh_content_analytics()")
    assert _from_view(conn, t) == _from_raw(conn, t) != {}

    add(60, 23)  # late events: up to a day old, as track_engagement allows
    conn.execute("SELECT app_private.refresh_content_analytics()")
    assert _from_view(conn, t) == _from_raw(conn, t)
    # Totals follow by difference: re-rolling the same days again must not drift.
    for _ in range(2):
        conn.execute("SELECT app_private.refresh_content_analytics()")
    assert _from_view(conn, t) == _from_raw(conn, t)


def test_incremental_roll_up_leaves_old_days_alone_until_a_backfill(conn, tenant) -> None:
    """A second roll-up recomputes only the recent days: an old day's row is not rewritten, and an
    old event inserted afterwards is counted only once a backfill rolls up from its day."""
    t, u = tenant
    c = f.content(conn, t, u)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
    _event(conn, t, c, "view", old, session="a")
    first = conn.execute("SELECT * FROM app_private.roll_up_engagement()").fetchone()
    assert first["since"] is None  # the first roll-up reads everything

    def old_row() -> dict:
        return conn.execute("SELECT xmin::text AS xmin, events FROM app_private.content_engagement_daily "
                            "WHERE content_id = %s AND day = %s", (c, old.date())).fetchone()

    before = old_row()
    _event(conn, t, c, "view", old, session="b")  # a late import of an old event
    second = conn.execute("SELECT * FROM app_private.roll_up_engagement()").fetchone()
    today = dt.datetime.now(dt.UTC).date()
    assert second["since"].date() in (today - dt.timedelta(days=2), today - dt.timedelta(days=3))
    assert old_row() == before  # same row version: not rewritten, the old event not counted

    conn.execute("SELECT * FROM app_private.roll_up_engagement(p_since => %s)", (old - dt.timedelta(days=1),))
    assert old_row()["events"] == 2
    conn.execute("SELECT app_private.refresh_content_analytics()")
    assert _from_view(conn, t)[c]["unique_views"] == 2


def test_totals_outlive_the_raw_partitions(conn, db_url, tenant) -> None:
    """Dropping a month past the retention removes raw events, not the counts built from them."""
    t, u = tenant
    c = f.content(conn, t, u)
    month = (dt.datetime.now(dt.UTC).replace(day=1) - dt.timedelta(days=16 * 31)).replace(day=10)
    conn.execute("SELECT * FROM app_private.ensure_engagement_partitions(0, %s)", (month,))
    for i in range(3):
        _event(conn, t, c, "view", month, session=f"old{i}")
    _event(conn, t, c, "like", dt.datetime.now(dt.UTC), session="new")
    conn.execute("SELECT app_private.refresh_content_analytics()")
    before = _from_view(conn, t)[c]

    dropped = conn.execute("SELECT * FROM app_private.maintain_partitions(3, 13) WHERE action = 'dropped'").fetchall()
    assert dropped, "the old month was not dropped"
    assert conn.execute("SELECT count(*) AS n FROM content_engagement WHERE content_id = %s", (c,)).fetchone()["n"] == 1
    conn.execute("SELECT app_private.refresh_content_analytics()")
    assert _from_view(conn, t)[c] == before
    assert (before["total_views"], before["unique_views"], before["likes"]) == (3, 3, 1)


def test_deleted_content_leaves_no_rollups(conn, tenant) -> None:
    """Daily rows, viewers and totals go with their content (and with a deleted tenant's content)."""
    t, u = tenant
    c = f.content(conn, t, u)
    _event(conn, t, c, "view", dt.datetime.now(dt.UTC), user_id=u)
    conn.execute("SELECT app_private.refresh_content_analytics()")
    counts = "SELECT (SELECT count(*) FROM app_private.content_engagement_daily) + " \
             "(SELECT count(*) FROM app_private.content_viewers) + " \
             "(SELECT count(*) FROM app_private.content_engagement_totals) AS n"
    assert conn.execute(counts).fetchone()["n"] == 3
    conn.execute("DELETE FROM content WHERE id = %s", (c,))
    assert conn.execute(counts).fetchone()["n"] == 0
    other = f.content(conn, t, u)
    _event(conn, t, other, "view", dt.datetime.now(dt.UTC), session="s")
    conn.execute("SELECT app_private.refresh_content_analytics()")
    assert conn.execute(counts).fetchone()["n"] == 3
    conn.execute("DELETE FROM tenants WHERE id = %s", (t,))
    assert conn.execute(counts).fetchone()["n"] == 0


def test_backfill_never_reaches_past_the_retained_events(conn, tenant) -> None:
    """A backfill from before the oldest retained event (even from -infinity) keeps the counts of
    the dropped month and does not zero the unique views."""
    t, u = tenant
    c = f.content(conn, t, u)
    now = dt.datetime.now(dt.UTC)
    for i in range(3):
        _event(conn, t, c, "view", now - dt.timedelta(days=40), session=f"old{i}")
    _event(conn, t, c, "view", now, session="new")
    conn.execute("SELECT app_private.refresh_content_analytics()")
    # The month of the old events is gone from the raw table (as if the retention dropped it).
    conn.execute("DELETE FROM content_engagement WHERE created_at < %s", (now - dt.timedelta(days=30),))
    conn.execute("SELECT * FROM app_private.roll_up_engagement(p_since => %s)", (now - dt.timedelta(days=400),))
    conn.execute("SELECT app_private.refresh_content_analytics()")
    assert (_from_view(conn, t)[c]["total_views"], _from_view(conn, t)[c]["unique_views"]) == (4, 4)

    conn.execute("SELECT * FROM app_private.roll_up_engagement(p_since => '-infinity')")
    conn.execute("SELECT app_private.refresh_content_analytics()")
    assert (_from_view(conn, t)[c]["total_views"], _from_view(conn, t)[c]["unique_views"]) == (4, 4)


def test_rollups_of_content_deleted_behind_the_triggers_back_are_removed(conn, tenant) -> None:
    """Rollup rows whose content no longer exists (a deletion that raced a roll-up) are removed
    by the next roll-up."""
    t, u = tenant
    c = f.content(conn, t, u)
    _event(conn, t, c, "view", dt.datetime.now(dt.UTC), session="s")
    conn.execute("SELECT app_private.refresh_content_analytics()")
    conn.execute("ALTER TABLE content DISABLE TRIGGER drop_rollups")
    conn.execute("DELETE FROM content WHERE id = %s", (c,))
    conn.execute("ALTER TABLE content ENABLE TRIGGER drop_rollups")
    left = "SELECT (SELECT count(*) FROM app_private.content_viewers WHERE content_id = %(c)s) + " \
           "(SELECT count(*) FROM app_private.content_engagement_totals WHERE content_id = %(c)s) AS n"
    assert conn.execute(left, {"c": c}).fetchone()["n"] == 2
    conn.execute("SELECT * FROM app_private.roll_up_engagement()")
    assert conn.execute(left, {"c": c}).fetchone()["n"] == 0
