"""One test per applicable item of seed-defects.md: each would fail on the plan's SQL."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from tests import factories as f
from tests.integration.schema.api import api, attempt


@pytest.fixture
def ab(conn: psycopg.Connection, supabase_roles: None) -> dict:
    """Tenants A and B, each with an owner; A also has a plain member."""
    a, b = f.tenant(conn), f.tenant(conn)
    ua, ub, um = f.user(conn), f.user(conn), f.user(conn)
    f.member(conn, a, ua, "owner")
    f.member(conn, b, ub, "owner")
    f.member(conn, a, um, "member")
    return {"a": a, "b": b, "ua": ua, "ub": ub, "um": um}


def test_d1_engagement_is_partitioned_and_deduplicated(conn, ab) -> None:
    """#1: content_engagement is range-partitioned; a repeated anonymous event in one minute counts once."""
    assert conn.execute("SELECT relkind FROM pg_class WHERE oid = 'content_engagement'::regclass").fetchone()["relkind"] == "p"
    c = f.content(conn, ab["a"], ab["ua"])
    first = conn.execute("SELECT track_engagement(%s, 'view', p_session_id => 's1') AS ok", (c,)).fetchone()["ok"]
    second = conn.execute("SELECT track_engagement(%s, 'view', p_session_id => 's1') AS ok", (c,)).fetchone()["ok"]
    retried = [conn.execute("SELECT track_engagement(%s, 'like', p_session_id => 's1', p_client_event_id => 'e1', "
                            "p_occurred_at => %s) AS ok", (c, dt.datetime.now(dt.UTC))).fetchone()["ok"] for _ in range(1)]
    again = conn.execute("SELECT track_engagement(%s, 'like', p_session_id => 's1', p_client_event_id => 'e1', "
                         "p_occurred_at => (SELECT created_at FROM content_engagement WHERE event_type = 'like')) AS ok",
                         (c,)).fetchone()["ok"]
    assert (first, second, retried, again) == (True, False, [True], False)
    assert conn.execute("SELECT count(*) AS n FROM content_engagement").fetchone()["n"] == 2


def test_d2_analytics_first_refresh_then_concurrent(conn, ab) -> None:
    """#2: the never-populated view refreshes fully first, then concurrently."""
    assert conn.execute("SELECT app_private.refresh_content_analytics() AS r").fetchone()["r"] == "full"
    assert conn.execute("SELECT app_private.refresh_content_analytics() AS r").fetchone()["r"] == "concurrent"


def test_d3_d25_recommendations_run_and_stay_in_tenant(conn, ab, db_url) -> None:
    """#3/#25: generate_recommendations runs, returns real scores, and never crosses tenants or shows drafts."""
    a, b = ab["a"], ab["b"]
    me, other = ab["ua"], f.user(conn)
    f.member(conn, a, other, "member")
    f.member(conn, b, other, "member")
    shared = [f.content(conn, a, me) for _ in range(2)]
    rec_ok = f.content(conn, a, me)
    rec_draft = f.content(conn, a, me, status="draft")
    b_item = f.content(conn, b, ab["ub"])
    for cid in shared:
        for uid in (me, other):
            f.insert(conn, "user_content_progress", tenant_id=a, user_id=uid, content_id=cid, progress_percentage=90)
    for cid in (rec_ok, rec_draft):
        f.insert(conn, "user_content_progress", tenant_id=a, user_id=other, content_id=cid, progress_percentage=90)
    f.insert(conn, "user_content_progress", tenant_id=b, user_id=other, content_id=b_item, progress_percentage=90)
    with api(db_url, me) as c:
        rows = c.execute("SELECT * FROM generate_recommendations(10, %s)", (a,)).fetchall()
    assert [r["content_id"] for r in rows] == [rec_ok]
    assert isinstance(rows[0]["confidence_score"], float) and rows[0]["reason"] == "Based on similar users' preferences"


def test_d5_d38_blocks_text_is_searchable_with_ranking(conn, ab) -> None:
    """#5/#38: words inside blocks are found through the stored weighted vector, title ranked first."""
    a, u = ab["a"], ab["ua"]
    in_title = f.content(conn, a, u, title="Volcano guide")
    in_block = f.content(conn, a, u, title="Travel", blocks=[{"type": "paragraph", "content": "a volcano trip"}])
    rows = conn.execute("SELECT content_id FROM search_content(%s, 'volcano')", (a,)).fetchall()
    assert [r["content_id"] for r in rows] == [in_title, in_block]


def test_d6_d31_partitions_in_utc_with_default_and_year_boundary(conn) -> None:
    """#6/#31: one naming scheme, UTC bounds whatever the TimeZone, across a year boundary."""
    conn.execute("SET TimeZone = 'America/Los_Angeles'")
    rows = conn.execute("SELECT * FROM app_private.ensure_engagement_partitions(2, '2030-12-15 UTC')").fetchall()
    assert [r["partition_name"] for r in rows] == ["content_engagement_y2030m12", "content_engagement_y2031m01",
                                                    "content_engagement_y2031m02"]
    bound = conn.execute("SELECT pg_get_expr(relpartbound, oid) AS b FROM pg_class "
                         "WHERE relname = 'content_engagement_y2031m01'").fetchone()["b"]
    conn.execute("SET TimeZone = 'UTC'")
    # Midnight UTC, shown in Los Angeles time.
    assert "'2030-12-31 16:00:00-08'" in bound and "'2031-01-31 16:00:00-08'" in bound
    assert conn.execute("SELECT to_regclass('content_engagement_template')").fetchone()["to_regclass"] is None


def test_d31_rows_outside_partitions_land_in_default_and_move_out(conn, ab) -> None:
    """#31: an event far in the future is kept in the default partition and moved when its month is created."""
    c = f.content(conn, ab["a"], ab["ua"])
    conn.execute("INSERT INTO content_engagement (tenant_id, content_id, event_type, idempotency_key, created_at) "
                 "VALUES (%s, %s, 'view', 'k', '2035-03-10 UTC')", (ab["a"], c))
    assert conn.execute("SELECT count(*) AS n FROM content_engagement_default").fetchone()["n"] == 1
    moved = conn.execute("SELECT * FROM app_private.ensure_engagement_partitions(0, '2035-03-01 UTC')").fetchone()
    assert moved["created"] and moved["moved_rows"] == 1
    assert conn.execute("SELECT count(*) AS n FROM content_engagement_y2035m03").fetchone()["n"] == 1


def test_d7_maintenance_runs_without_vacuum(conn, ab) -> None:
    """#7: run_maintenance() completes (no VACUUM inside) and reports each step."""
    result = conn.execute("SELECT app_private.run_maintenance() AS r").fetchone()["r"]
    assert set(result) >= {"analytics", "sessions_removed", "tags_recounted", "uploads_expired", "jobs_purged"}


def test_d9_d10_d11_tenant_helper_checks_membership(db_url, ab) -> None:
    """#9-11: get_current_tenant_id() works for a member and denies a non-member, even via a temp table."""
    with api(db_url, ab["ua"]) as c:
        c.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(ab["a"]),))
        assert c.execute("SELECT get_current_tenant_id() AS t").fetchone()["t"] == ab["a"]
        c.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(ab["b"]),))
        assert attempt(c, "SELECT get_current_tenant_id()") == "42"
        c.execute("RESET ROLE")
        c.execute("SET ROLE authenticated")
    with api(db_url, ab["ua"]) as c:
        c.execute("SELECT set_config('app.current_tenant_id', '', false)")
        assert c.execute("SELECT get_current_tenant_id() AS t").fetchone()["t"] is None


def test_d11_temp_table_shadowing_does_not_grant_access(db_url, ab) -> None:
    """#11: a temp table named tenant_memberships cannot fake membership (search_path is pinned)."""
    with api(db_url, ab["ua"], role="authenticated") as c:
        c.execute("RESET ROLE")  # authenticator may create temp tables in a direct session
        c.execute("CREATE TEMP TABLE tenant_memberships AS SELECT %s::uuid tenant_id, %s::uuid user_id, "
                  "'active'::text status, 'owner'::text role", (ab["b"], ab["ua"]))
        c.execute("GRANT SELECT ON tenant_memberships TO PUBLIC")
        c.execute("SET ROLE authenticated")
        c.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(ab["b"]),))
        assert attempt(c, "SELECT get_current_tenant_id()") == "42"
        assert c.execute("SELECT count(*) AS n FROM tenants WHERE id = %s", (ab["b"],)).fetchone()["n"] == 0


def test_d12_member_cannot_delete_the_tenants_content(conn, db_url, ab) -> None:
    """#12: a plain member's DELETE removes nothing."""
    f.content(conn, ab["a"], ab["ua"])
    with api(db_url, ab["um"]) as c:
        assert attempt(c, "DELETE FROM content") == 0


def test_d14_analytics_view_is_not_exposed(conn, db_url, ab) -> None:
    """#14: the materialized view is out of the API's reach; content_performance() checks the role."""
    conn.execute("SELECT app_private.refresh_content_analytics()")
    with api(db_url, ab["um"]) as c:
        assert attempt(c, "SELECT * FROM app_private.content_performance_summary") == "42"
        assert attempt(c, "SELECT * FROM content_performance(%s)", (ab["a"],)) == "42"
    with api(db_url, ab["ua"]) as c:
        assert attempt(c, "SELECT * FROM content_performance(%s)", (ab["a"],)) == 0
        assert attempt(c, "SELECT * FROM content_performance(%s)", (ab["b"],)) == "42"


def test_d15_links_cannot_cross_tenants(conn, ab) -> None:
    """#15: linking A's content to B's asset, tag or category, or a reply to another content's comment, fails."""
    a, b = ab["a"], ab["b"]
    ca, cb = f.content(conn, a, ab["ua"]), f.content(conn, b, ab["ub"])
    asset_b = f.asset(conn, b, ab["ub"])
    tag_b = f.insert(conn, "content_tags", tenant_id=b, name="t", slug="t")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        f.insert(conn, "content_assets", tenant_id=a, content_id=ca, asset_id=asset_b)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        f.insert(conn, "content_categorizations", tenant_id=a, content_id=ca, tag_id=tag_b)
    parent = f.insert(conn, "content_comments", tenant_id=b, content_id=cb, author_id=ab["ub"], author_name="b", body="x")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        f.insert(conn, "content_comments", tenant_id=a, content_id=ca, parent_id=parent, author_id=ab["ua"],
                 author_name="a", body="y")


def test_d17_profile_created_with_user(conn) -> None:
    """#17: inserting an auth user creates the profile from its metadata."""
    uid = f.user(conn, meta={"full_name": "Ada"})
    assert conn.execute("SELECT full_name FROM user_profiles WHERE id = %s", (uid,)).fetchone()["full_name"] == "Ada"


def test_d18_deleting_a_user_is_never_blocked(conn, ab) -> None:
    """#18: an admin user-delete succeeds; attribution becomes NULL, personal data goes."""
    u = ab["ua"]
    c = f.content(conn, ab["a"], u)
    f.asset(conn, ab["a"], u)
    f.insert(conn, "content_comments", tenant_id=ab["a"], content_id=c, author_id=u, author_name="a", body="x")
    f.insert(conn, "search_queries", tenant_id=ab["a"], query="q", user_id=u)
    conn.execute("DELETE FROM auth.users WHERE id = %s", (u,))
    assert conn.execute("SELECT creator_id FROM content WHERE id = %s", (c,)).fetchone()["creator_id"] is None
    assert conn.execute("SELECT count(*) AS n FROM content_comments").fetchone()["n"] == 0


def test_d19_analytics_do_not_double_count(conn, ab) -> None:
    """#19: 3 views, 1 like, 1 completion and 2 progress rows report 3, 1, 1."""
    c = f.content(conn, ab["a"], ab["ua"])
    for i, ev in enumerate(["view", "view", "view", "like", "completion"]):
        conn.execute("INSERT INTO content_engagement (tenant_id, content_id, event_type, idempotency_key, session_id) "
                     "VALUES (%s, %s, %s, %s, 's')", (ab["a"], c, ev, f"k{i}"))
    for uid in (ab["ua"], ab["um"]):
        f.insert(conn, "user_content_progress", tenant_id=ab["a"], user_id=uid, content_id=c, progress_percentage=50)
    conn.execute("SELECT app_private.refresh_content_analytics()")
    row = conn.execute("SELECT * FROM content_performance(%s)", (ab["a"],)).fetchone()
    assert (row["total_views"], row["likes"], row["completions"], row["views_last_7_days"]) == (3, 1, 1, 3)


def test_d20_search_combines_filters_without_duplicates_or_private(conn, ab) -> None:
    """#20: two categories plus a tag return the article once; private and paid items are left out for anon."""
    a, u = ab["a"], ab["ua"]
    art = f.content(conn, a, u, title="Kayak tips")
    f.content(conn, a, u, title="Kayak secrets", visibility="private")
    f.content(conn, a, u, title="Kayak paid", access_level="paid", price_cents=100)
    cats = [f.insert(conn, "content_categories", tenant_id=a, name=n, slug=n) for n in ("c1", "c2")]
    tag = f.insert(conn, "content_tags", tenant_id=a, name="t", slug="t")
    for cat in cats:
        f.insert(conn, "content_categorizations", tenant_id=a, content_id=art, category_id=cat)
    f.insert(conn, "content_categorizations", tenant_id=a, content_id=art, tag_id=tag)
    rows = conn.execute("SELECT content_id FROM search_content(%s, 'kayak', NULL, %s, %s)", (a, cats, [tag])).fetchall()
    assert [r["content_id"] for r in rows] == [art]
    with api(conn.info.dsn, None) as c:
        anon_rows = c.execute("SELECT content_id FROM search_content(%s, 'kayak')", (a,)).fetchall()
    assert [r["content_id"] for r in anon_rows] == [art]


def test_d21_archiving_published_content_keeps_its_date(conn, ab) -> None:
    """#21: archiving published content works; NULL status is rejected; negative prices are rejected."""
    c = f.content(conn, ab["a"], ab["ua"])
    conn.execute("UPDATE content SET status = 'archived' WHERE id = %s", (c,))
    row = conn.execute("SELECT published_at, archived_at FROM content WHERE id = %s", (c,)).fetchone()
    assert row["published_at"] is not None and row["archived_at"] is not None
    with pytest.raises(psycopg.errors.NotNullViolation):
        f.content(conn, ab["a"], ab["ua"], status=None)
    with pytest.raises(psycopg.errors.CheckViolation):
        f.content(conn, ab["a"], ab["ua"], access_level="paid", price_cents=-500)


def test_d21_publishing_a_scheduled_row_works(conn, ab) -> None:
    """#21: a scheduled row can be published without clearing scheduled_for by hand."""
    c = f.content(conn, ab["a"], ab["ua"], status="scheduled", scheduled_for=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    conn.execute("UPDATE content SET status = 'published' WHERE id = %s", (c,))
    assert conn.execute("SELECT status FROM content WHERE id = %s", (c,)).fetchone()["status"] == "published"


def test_d22_versions_are_rows_of_content_versions(conn, ab) -> None:
    """#22: editing content bumps version and snapshots the previous one; the slug stays unique."""
    c = f.content(conn, ab["a"], ab["ua"], title="v1")
    conn.execute("UPDATE content SET title = 'v2' WHERE id = %s", (c,))
    assert conn.execute("SELECT version FROM content WHERE id = %s", (c,)).fetchone()["version"] == 2
    assert conn.execute("SELECT title FROM content_versions WHERE content_id = %s AND version = 1", (c,)).fetchone()["title"] == "v1"


def test_d23_progress_status_and_visits(db_url, conn, ab) -> None:
    """#23: first call at 100 completes; completed never regresses; heartbeats are not visits; bad input fails."""
    c = f.content(conn, ab["a"], ab["ua"])
    c2 = f.content(conn, ab["a"], ab["ua"])
    with api(db_url, ab["um"]) as api_conn:
        first = api_conn.execute("SELECT * FROM update_content_progress(%s, 100)", (c,)).fetchone()
        assert first["completion_status"] == "completed" and first["completed_at"] is not None
        later = api_conn.execute("SELECT * FROM update_content_progress(%s, 40)", (c,)).fetchone()
        assert later["completion_status"] == "completed" and later["progress_percentage"] == 100
        for _ in range(10):
            beat = api_conn.execute("SELECT * FROM update_content_progress(%s, 50, 10, NULL, 's1')", (c2,)).fetchone()
        assert beat["visit_count"] == 1 and beat["completion_status"] == "in_progress"
        assert attempt(api_conn, "SELECT update_content_progress(%s, 50, -100000)", (c,)) == "22"
        assert attempt(api_conn, "SELECT update_content_progress(%s, 150)", (c,)) == "22"


def test_d24_reply_count_follows_soft_delete_and_thread_fields(conn, ab) -> None:
    """#24: soft-deleting a reply lowers reply_count; thread level and path are derived."""
    c = f.content(conn, ab["a"], ab["ua"])
    kw = {"tenant_id": ab["a"], "content_id": c, "author_id": ab["ua"], "author_name": "a", "body": "x"}
    parent = f.insert(conn, "content_comments", **kw)
    reply = f.insert(conn, "content_comments", parent_id=parent, **kw)
    row = conn.execute("SELECT thread_level, thread_path FROM content_comments WHERE id = %s", (reply,)).fetchone()
    assert row["thread_level"] == 1 and row["thread_path"].startswith(parent.hex)
    assert conn.execute("SELECT reply_count FROM content_comments WHERE id = %s", (parent,)).fetchone()["reply_count"] == 1
    conn.execute("UPDATE content_comments SET status = 'deleted' WHERE id = %s", (reply,))
    assert conn.execute("SELECT reply_count FROM content_comments WHERE id = %s", (parent,)).fetchone()["reply_count"] == 0
    f.insert(conn, "comment_likes", tenant_id=ab["a"], comment_id=parent, user_id=ab["um"])
    assert conn.execute("SELECT like_count FROM content_comments WHERE id = %s", (parent,)).fetchone()["like_count"] == 1


def test_d26_null_block_id_does_not_defeat_uniqueness(conn, ab) -> None:
    """#26: the same (content, asset, 'thumbnail') link cannot be inserted twice."""
    c, a = f.content(conn, ab["a"], ab["ua"]), f.asset(conn, ab["a"], ab["ua"])
    f.insert(conn, "content_assets", tenant_id=ab["a"], content_id=c, asset_id=a, usage_type="thumbnail")
    with pytest.raises(psycopg.errors.UniqueViolation):
        f.insert(conn, "content_assets", tenant_id=ab["a"], content_id=c, asset_id=a, usage_type="thumbnail")


def test_d27_reordering_collection_items(conn, ab) -> None:
    """#27: shifting every item's sort_order by one succeeds (deferred unique)."""
    coll = f.insert(conn, "content_collections", tenant_id=ab["a"], creator_id=ab["ua"], name="c", slug="c",
                    collection_type="course")
    for i in range(3):
        f.insert(conn, "content_collection_items", tenant_id=ab["a"], collection_id=coll,
                 content_id=f.content(conn, ab["a"], ab["ua"]), sort_order=i)
    assert conn.execute("UPDATE content_collection_items SET sort_order = sort_order + 1").rowcount == 3


def test_d28_d29_valid_writes_are_not_rejected_by_indexes(conn, ab) -> None:
    """#28/#29: a fractional duration and a long excerpt are stored."""
    f.asset(conn, ab["a"], ab["ua"], file_type="video", metadata={"duration": "12.5"}, duration_seconds=12.5)
    f.content(conn, ab["a"], ab["ua"], excerpt="x" * 6400)


def test_d30_cleanup_spares_covers_and_block_assets(conn, ab) -> None:
    """#30: failed old assets used as a cover or inside blocks survive; an unused one is collected."""
    a, u = ab["a"], ab["ua"]
    old = {"processing_status": "failed"}
    cover, in_block, unused = (f.asset(conn, a, u, **old) for _ in range(3))
    f.insert(conn, "content_collections", tenant_id=a, creator_id=u, name="c", slug="c", collection_type="course",
             cover_asset_id=cover)
    f.content(conn, a, u, blocks=[{"type": "image", "asset_id": str(in_block)}])
    conn.execute("SET session_replication_role = replica")  # no trigger runs while the rows are aged
    conn.execute("UPDATE assets SET status_changed_at = now() - interval '30 days'")
    conn.execute("RESET session_replication_role")
    rows = conn.execute("SELECT asset_id FROM app_private.collect_orphaned_assets()").fetchall()
    assert [r["asset_id"] for r in rows] == [unused]
    assert conn.execute("SELECT app_private.purge_deleted_assets(%s) AS n", ([unused],)).fetchone()["n"] == 1


def test_d30_cover_asset_deletion_sets_null(conn, ab) -> None:
    """#30: deleting a cover asset leaves the collection without a cover instead of failing."""
    a, u = ab["a"], ab["ua"]
    cover = f.asset(conn, a, u)
    coll = f.insert(conn, "content_collections", tenant_id=a, creator_id=u, name="c", slug="c",
                    collection_type="course", cover_asset_id=cover)
    conn.execute("DELETE FROM assets WHERE id = %s", (cover,))
    row = conn.execute("SELECT tenant_id, cover_asset_id FROM content_collections WHERE id = %s", (coll,)).fetchone()
    assert row["cover_asset_id"] is None and row["tenant_id"] == a


def test_d32_updated_at_is_maintained(conn, ab) -> None:
    """#32: updating content moves updated_at forward."""
    c = f.content(conn, ab["a"], ab["ua"])
    conn.execute("UPDATE content SET updated_at = now() - interval '1 day' WHERE id = %s", (c,))
    conn.execute("UPDATE content SET title = 'new' WHERE id = %s", (c,))
    assert conn.execute("SELECT updated_at > now() - interval '1 minute' AS fresh FROM content WHERE id = %s",
                        (c,)).fetchone()["fresh"]


def test_d33_listing_plan_uses_tenant_index(conn, db_url, ab) -> None:
    """#33: the RLS helper runs once (InitPlan) and the listing uses an index on tenant_id."""
    for _ in range(50):
        f.content(conn, ab["b"], ab["ub"])
    f.content(conn, ab["a"], ab["ua"])
    conn.execute("ANALYZE content")
    with api(db_url, ab["ua"]) as c:
        c.execute("SET enable_seqscan = off")
        plan = "\n".join(r["QUERY PLAN"] for r in c.execute(
            "EXPLAIN SELECT id, title FROM content WHERE tenant_id = %s AND status = 'published' "
            "ORDER BY published_at DESC LIMIT 20", (ab["a"],)))
    assert "InitPlan" in plan and "Index" in plan and "my_tenant_ids" not in plan.split("InitPlan")[0]


def test_d37_reclaim_uses_lease_index(conn) -> None:
    """#37: the reclaim query walks the partial index on running leases, not the whole table."""
    conn.execute("SET enable_seqscan = off")
    plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
        "EXPLAIN SELECT id FROM asset_processing_jobs WHERE status = 'running' AND lease_expires_at < now() "
        "ORDER BY lease_expires_at LIMIT 1000"))
    assert "jobs_lease_idx" in plan and "Sort" not in plan


def test_blocks_are_validated_with_index_and_field(conn, ab) -> None:
    """Invalid blocks are rejected with the block index and the field named."""
    bad = [{"type": "paragraph", "content": "ok"}, {"type": "heading", "content": "H", "level": 9}]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"block 1 \(heading\): level must be at most 6"):
        f.content(conn, ab["a"], ab["ua"], blocks=bad)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"block 0 \(image\): asset_id must be a uuid"):
        f.content(conn, ab["a"], ab["ua"], blocks=[{"type": "image", "asset_id": "nope"}])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='block 0: unknown block type "marquee"'):
        f.content(conn, ab["a"], ab["ua"], blocks=[{"type": "marquee"}])
