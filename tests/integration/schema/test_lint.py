"""Schema lint: properties every table and function must have, checked in the catalogs."""

from __future__ import annotations

import psycopg

OUR_SCHEMAS = ("public", "app", "app_private")

# RPCs that anon may call, on purpose (everything else in public is closed to anon).
ANON_FUNCTIONS = {"get_current_tenant_id", "search_content", "track_engagement", "get_content_by_slug",
                  "get_collection_by_slug"}
# Tables anon may read (RLS then limits the rows to published, public, free items).
ANON_TABLES = {"content", "block_types", "content_collections", "content_collection_items",
               "content_categories", "content_tags", "content_comments"}


def test_every_table_and_partition_has_rls(conn: psycopg.Connection) -> None:
    """Row-level security is enabled on every table of our schemas, partitions included."""
    rows = conn.execute(
        """SELECT n.nspname || '.' || c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY (%s) AND NOT c.relrowsecurity""",
        (list(OUR_SCHEMAS),),
    ).fetchall()
    assert [r["t"] for r in rows] == []


def test_partitions_exist_ahead_and_are_closed_to_api_roles(conn: psycopg.Connection) -> None:
    """content_engagement has this month and three ahead, a default partition, none readable by anon."""
    parts = [r["relname"] for r in conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'public.content_engagement'::regclass ORDER BY 1""")]
    assert "content_engagement_default" in parts
    assert len([p for p in parts if p.startswith("content_engagement_y")]) == 4
    for p in parts:
        assert not conn.execute("SELECT has_table_privilege('anon', %s, 'SELECT') AS ok", (f"public.{p}",)).fetchone()["ok"]


def test_security_definer_functions_pin_search_path(conn: psycopg.Connection) -> None:
    """Every SECURITY DEFINER function in our schemas sets search_path (Supabase lint 0011)."""
    rows = conn.execute(
        """SELECT p.oid::regprocedure::text AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = ANY (%s) AND p.prosecdef
             AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search_path=%%')""",
        (list(OUR_SCHEMAS),),
    ).fetchall()
    assert [r["f"] for r in rows] == []


def test_policy_helpers_are_stable(conn: psycopg.Connection) -> None:
    """Helpers that policies call are STABLE or IMMUTABLE, so (select fn()) runs once per statement."""
    rows = conn.execute(
        """SELECT p.proname, p.provolatile FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'app' OR p.proname = 'get_current_tenant_id'""").fetchall()
    assert rows and all(r["provolatile"] in ("s", "i") for r in rows), rows


def test_every_foreign_key_is_indexed(conn: psycopg.Connection) -> None:
    """Each foreign key's columns lead some index of its table (defect 34)."""
    rows = conn.execute(
        """SELECT c.conrelid::regclass::text AS t, c.conname
           FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
           WHERE c.contype = 'f' AND n.nspname = ANY (%s) AND c.conparentid = 0
             AND NOT EXISTS (
               SELECT 1 FROM pg_index i
               WHERE i.indrelid = c.conrelid
                 AND (SELECT array_agg(x ORDER BY x) FROM unnest(i.indkey[0:cardinality(c.conkey) - 1]) x)
                     = (SELECT array_agg(x ORDER BY x) FROM unnest(c.conkey) x))""",
        (list(OUR_SCHEMAS),),
    ).fetchall()
    assert [(r["t"], r["conname"]) for r in rows] == []


def test_no_duplicate_indexes(conn: psycopg.Connection) -> None:
    """No two indexes of a table share columns, expressions and predicate (defect 35)."""
    rows = conn.execute(
        """SELECT indrelid::regclass::text AS t, array_agg(indexrelid::regclass::text) AS idx
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = ANY (%s) AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indrelid)
           GROUP BY indrelid, indkey::text, coalesce(pg_get_expr(indexprs, indrelid), ''),
                    coalesce(pg_get_expr(indpred, indrelid), ''), indclass::text
           HAVING count(*) > 1""",
        (list(OUR_SCHEMAS),),
    ).fetchall()
    assert [(r["t"], r["idx"]) for r in rows] == []


def test_anon_executes_only_the_public_rpcs(conn: psycopg.Connection) -> None:
    """anon can execute exactly the intended RPCs in public, and nothing in app_private."""
    rows = conn.execute(
        """SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname IN ('public', 'app_private') AND has_function_privilege('anon', p.oid, 'EXECUTE')""",
    ).fetchall()
    assert {r["proname"] for r in rows if r["nspname"] == "public"} == ANON_FUNCTIONS
    assert [r for r in rows if r["nspname"] == "app_private"] == []


def test_authenticated_cannot_call_internals(conn: psycopg.Connection) -> None:
    """No app_private function or table is usable by authenticated (no schema USAGE, no EXECUTE)."""
    assert not conn.execute("SELECT has_schema_privilege('authenticated', 'app_private', 'USAGE') AS ok").fetchone()["ok"]
    rows = conn.execute(
        """SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'app_private' AND has_function_privilege('authenticated', p.oid, 'EXECUTE')""").fetchall()
    assert rows == []


def test_anon_table_privileges_are_read_only_and_few(conn: psycopg.Connection) -> None:
    """anon holds SELECT on the public-facing tables only, and no write privilege anywhere."""
    rows = conn.execute(
        """SELECT c.relname, has_table_privilege('anon', c.oid, 'SELECT') AS r,
                  has_table_privilege('anon', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE') AS w
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('public', 'app_private') AND c.relkind IN ('r', 'p', 'v', 'm')""").fetchall()
    assert {r["relname"] for r in rows if r["r"]} == ANON_TABLES
    assert [r["relname"] for r in rows if r["w"]] == []
