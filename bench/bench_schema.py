"""Schema benchmark (issue 3, item 6), run by hand:

    .venv/bin/python bench/bench_schema.py [--rows 200000 --tenants 50 --iterations 200]

What it does, against the PostgreSQL of ``--admin-url`` (default postgres@127.0.0.1:5432):

1. applies the Supabase stand-in roles (``../shared/supabase/roles.sql``, idempotent), drops and
   creates the database ``--db`` (default ``cf_bench_schema``) and applies ``schema/migrations``
   with ``schema.migrate``;
2. builds the data set in SQL (``INSERT ... SELECT generate_series``, content through the real
   block-validating insert trigger): ``--tenants`` tenants with 5 users each (owner, editor,
   author, two members), ``--rows`` content rows spread round-robin over the tenants (so one
   tenant's rows are scattered over the whole heap, as in a shared multi-tenant table), 78 %
   published / 10 % draft / 3 % in review / 3 % scheduled / 6 % archived, published visibility
   85 % public / 7 % members / 5 % private / 3 % unlisted, 10 % premium and 5 % paid, titles,
   excerpts and blocks made of topic words; then ``VACUUM ANALYZE``;
3. measures, as a PostgREST caller (login ``authenticator``, ``SET ROLE authenticated``,
   ``request.jwt.claims`` with the ``sub`` of a plain *member* of the first tenant), the queries of
   ``QUERIES`` below (tenant listing, visible count, ``search_content`` for a rare, a typical and
   an every-row word), and the same listing and count as the superuser (no RLS) as a baseline.
   Each query runs ``--warmup`` times, then ``--iterations`` timed times (client wall time of
   execute + fetch over a local TCP connection; psycopg prepares the statement after 5 runs, as
   PostgREST does); median and p95 are reported in ms, with one ``EXPLAIN (ANALYZE, BUFFERS)``
   plan per query. The plan inside ``search_content`` (plpgsql) is captured with ``auto_explain``
   (nested statements, sent to the client as NOTICEs) in a superuser session that has done
   ``SET ROLE authenticated`` with the same claims;
4. drops the database (``--keep`` leaves it for inspection).

It prints a Markdown report (machine, PostgreSQL version and settings, build times, results,
plans) on stdout. ``--try-index`` additionally creates a candidate index in the bench database
only (never in the migrations) and measures the listing again, to check a proposed fix.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from common import conninfo, sh
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROLES_SQL = ROOT.parent / "shared" / "supabase" / "roles.sql"

LISTING = ("SELECT id, title, published_at FROM content WHERE tenant_id = %(tenant)s AND status = 'published' "
           "ORDER BY published_at DESC LIMIT 20")
COUNT = "SELECT count(*) FROM content WHERE tenant_id = %(tenant)s"
SEARCH = "SELECT * FROM search_content(%(tenant)s, %(q)s)"

# (label, sql, extra params, run as) -- "api" = authenticated member, "super" = postgres, no RLS.
QUERIES: list[tuple[str, str, dict[str, Any], str]] = [
    ("listing (authenticated, RLS)", LISTING, {}, "api"),
    ("listing (superuser, no RLS, baseline)", LISTING, {}, "super"),
    ("count visible (authenticated, RLS)", COUNT, {}, "api"),
    ("count (superuser, no RLS, baseline)", COUNT, {}, "super"),
    ("search_content 'zeppelin' (~1 % of rows)", SEARCH, {"q": "zeppelin"}, "api"),
    ("search_content 'kubernetes' (~5 % of rows)", SEARCH, {"q": "kubernetes"}, "api"),
    ("search_content 'look' (every row)", SEARCH, {"q": "look"}, "api"),
]

TOPICS = ["postgres", "python", "kubernetes", "marketing", "photography", "cooking", "finance", "gardening",
          "design", "security", "music", "travel", "fitness", "history", "astronomy", "chemistry", "writing",
          "startups", "climate", "robotics"]
ADJECTIVES = ["practical", "modern", "complete", "quick", "advanced", "beginner", "hidden", "essential",
              "weekly", "honest"]
NOUNS = ["guide", "tutorial", "notes", "review", "checklist", "story", "lessons", "interview", "recipes", "playbook"]
TYPES = ["article", "blog_post", "video_lesson", "podcast_episode", "newsletter", "case_study"]
ROLES = ["owner", "editor", "author", "member", "member"]  # slot 0..4 of each tenant




def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- build


def build(url: str, rows: int, tenants: int) -> dict[str, float]:
    times: dict[str, float] = {}
    arr = lambda xs: "ARRAY[" + ", ".join(f"'{x}'" for x in xs) + "]"  # noqa: E731 - fixed word lists
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        conn.execute("""
            CREATE TABLE public.bench_users AS
            SELECT t AS tenant_no, s AS slot, gen_random_uuid() AS user_id
            FROM generate_series(1, %(n)s) t, generate_series(0, 4) s""", {"n": tenants})
        conn.execute("""
            INSERT INTO auth.users (id, email, raw_user_meta_data)
            SELECT user_id, format('u%s-%s@bench.test', tenant_no, slot),
                   jsonb_build_object('full_name', format('User %s-%s', tenant_no, slot))
            FROM public.bench_users""")
        conn.execute("""
            CREATE TABLE public.bench_tenants AS
            SELECT t AS tenant_no, gen_random_uuid() AS id FROM generate_series(1, %(n)s) t""", {"n": tenants})
        conn.execute("""
            INSERT INTO public.tenants (id, name, slug, plan_type)
            SELECT id, format('Tenant %s', tenant_no), format('bench-tenant-%s', tenant_no),
                   (ARRAY['basic', 'pro', 'enterprise'])[1 + tenant_no % 3]
            FROM public.bench_tenants""")
        conn.execute(f"""
            INSERT INTO public.tenant_memberships (tenant_id, user_id, role, joined_at)
            SELECT t.id, u.user_id, ({arr(ROLES)})[u.slot + 1], now()
            FROM public.bench_users u JOIN public.bench_tenants t USING (tenant_no)""")
        times["users, tenants, memberships"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        conn.execute("""
            CREATE FUNCTION pg_temp.h(i bigint, salt int) RETURNS int LANGUAGE sql IMMUTABLE AS
            'SELECT abs(hashint8(i * 7 + salt::bigint * 1000000007) % 1000000)'""")
        chunk = 50_000
        for start in range(1, rows + 1, chunk):
            stop = min(rows, start + chunk - 1)
            conn.execute(f"""
                WITH g AS (
                  SELECT i,
                         (1 + i %% %(tenants)s::int)::int AS tenant_no,
                         ({arr(TOPICS)})[1 + pg_temp.h(i, 1) %% 20] AS topic,
                         ({arr(ADJECTIVES)})[1 + pg_temp.h(i, 2) %% 10] AS adj,
                         ({arr(NOUNS)})[1 + pg_temp.h(i, 3) %% 10] AS noun,
                         pg_temp.h(i, 4) %% 100 AS s, pg_temp.h(i, 5) %% 100 AS v, pg_temp.h(i, 6) %% 100 AS a, pg_temp.h(i, 7) AS x
                  FROM generate_series(%(start)s::bigint, %(stop)s::bigint) i
                ), r AS (
                  SELECT g.*,
                         CASE WHEN s < 78 THEN 'published' WHEN s < 88 THEN 'draft' WHEN s < 91 THEN 'in_review'
                              WHEN s < 94 THEN 'scheduled' ELSE 'archived' END AS status,
                         CASE WHEN v < 85 THEN 'public' WHEN v < 92 THEN 'members' WHEN v < 97 THEN 'private'
                              ELSE 'unlisted' END AS visibility,
                         CASE WHEN a < 85 THEN 'free' WHEN a < 95 THEN 'premium' ELSE 'paid' END AS access_level
                  FROM g
                )
                INSERT INTO public.content (tenant_id, creator_id, content_type, title, slug, excerpt, blocks,
                                            status, published_at, scheduled_for, visibility, access_level,
                                            price_cents, keywords)
                SELECT t.id, u.user_id,
                       (({arr(TYPES)})[1 + x %% 6])::public.content_type_enum,
                       format('%%s %%s %%s #%%s', initcap(adj), topic, noun, i),
                       format('%%s-%%s-%%s', topic, noun, i),
                       format('A %%s look at %%s for people who like %%s.', adj, topic,
                              ({arr(TOPICS)})[1 + (x / 7) %% 20]),
                       jsonb_build_array(
                         jsonb_build_object('type', 'heading', 'content', format('%%s %%s', initcap(topic), noun),
                                            'level', 2),
                         jsonb_build_object('type', 'paragraph', 'content',
                           format('This %%s about %%s covers the basics, the pitfalls and a worked example%%s.',
                                  noun, topic, CASE WHEN x %% 100 = 0 THEN ' with a zeppelin' ELSE '' END)),
                         jsonb_build_object('type', 'quote', 'content', 'Measure, then optimise.',
                                            'attribution', 'Bench')),
                       status::public.content_status_enum,
                       CASE WHEN status IN ('published', 'archived')
                            THEN now() - make_interval(days => (x %% 730)::int, mins => ((x / 730) %% 1440)::int) END,
                       CASE WHEN status = 'scheduled' THEN now() + make_interval(days => (1 + x %% 30)::int) END,
                       visibility, access_level, CASE WHEN access_level = 'paid' THEN 499 ELSE 0 END,
                       ARRAY[topic, noun]
                FROM r
                JOIN public.bench_tenants t USING (tenant_no)
                JOIN public.bench_users u ON u.tenant_no = r.tenant_no AND u.slot = CASE WHEN x %% 2 = 0 THEN 0 ELSE 2 END
            """, {"tenants": tenants, "start": start, "stop": stop})
            log(f"content rows {stop}/{rows}")
        times["content (through the block-validating trigger)"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        times["VACUUM ANALYZE"] = time.perf_counter() - t0
    return times


# --------------------------------------------------------------------------- measure


def api_connection(url: str, user_id: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(conninfo(url, user="authenticator"), autocommit=True)
    conn.execute("SET ROLE authenticated")
    conn.execute("SELECT set_config('request.jwt.claims', %s, false)",
                 (json.dumps({"sub": user_id, "role": "authenticated"}),))
    return conn


def timed(conn: psycopg.Connection[Any], query: str, params: dict[str, Any], warmup: int, iterations: int) -> dict[str, Any]:
    rows: list[Any] = []
    for _ in range(warmup):
        rows = conn.execute(query, params).fetchall()
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        rows = conn.execute(query, params).fetchall()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "median": statistics.median(samples),
        "p95": samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)],
        "min": samples[0],
        "rows": len(rows) if len(rows) != 1 or len(rows[0]) != 1 else rows[0][0],
    }


def explain(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> str:
    cur = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + query, params)
    return "\n".join(r[0] for r in cur.fetchall())


def nested_plan(url: str, user_id: str, query: str, params: dict[str, Any]) -> str:
    """The plan of the statements run inside a function, via auto_explain NOTICEs."""
    notices: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        for stmt in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                     "SET auto_explain.log_analyze = on", "SET auto_explain.log_buffers = on",
                     "SET auto_explain.log_timing = on", "SET auto_explain.log_nested_statements = on",
                     "SET auto_explain.log_level = notice", "SET ROLE authenticated"):
            conn.execute(stmt)
        conn.execute("SELECT set_config('request.jwt.claims', %s, false)",
                     (json.dumps({"sub": user_id, "role": "authenticated"}),))
        notices.clear()
        conn.execute(query, params).fetchall()
    inner = [n for n in notices if "RETURN QUERY" in n or "hits AS" in n or "WITH q AS" in n]
    return "\n".join(inner or notices)


def trim(plan: str, keep: int = 70) -> str:
    """Drop planning-buffer lines and auto_explain's echo of the query text; cap the length."""
    out: list[str] = []
    in_query_text = after_planning = False
    for ln in plan.splitlines():
        if ln.startswith("Query Text:"):
            in_query_text = True
            continue
        if in_query_text:
            if "(cost=" not in ln or ln[:1].isspace():
                continue
            in_query_text = False
        if ln.strip() == "Planning:":
            after_planning = True
            continue
        if after_planning and ln.strip().startswith("Buffers:"):
            after_planning = False
            continue
        after_planning = False
        out.append(ln)
    return "\n".join(out[:keep] + (["  ..."] if len(out) > keep else []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--tenants", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--db", default="cf_bench_schema")
    ap.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    ap.add_argument("--try-index", metavar="SQL", action="append", default=[],
                    help="CREATE INDEX statement to try in the bench database after the main run")
    args = ap.parse_args()

    admin = args.admin_url
    url = conninfo(admin, dbname=args.db)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(ROLES_SQL.read_text())
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.db)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO authenticator").format(sql.Identifier(args.db)))
    try:
        from schema import migrate

        t0 = time.perf_counter()
        migrate(url)
        times = {"migrate (all files)": time.perf_counter() - t0}
        log("migrated; building data")
        times.update(build(url, args.rows, args.tenants))

        with psycopg.connect(url, autocommit=True) as su:
            tenant, member = su.execute("""
                SELECT t.id::text, u.user_id::text FROM bench_tenants t
                JOIN bench_users u ON u.tenant_no = t.tenant_no AND u.slot = 3 WHERE t.tenant_no = 1""").fetchone()
            facts = su.execute("""
                SELECT (SELECT count(*) FROM content), (SELECT count(*) FROM content WHERE tenant_id = %(t)s),
                       (SELECT count(*) FROM content WHERE tenant_id = %(t)s AND status = 'published'),
                       pg_size_pretty(pg_total_relation_size('content')), pg_size_pretty(pg_relation_size('content')),
                       version()""", {"t": tenant}).fetchone()
            settings = dict(su.execute("""SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN
                ('shared_buffers', 'work_mem', 'effective_cache_size', 'random_page_cost', 'jit', 'max_parallel_workers_per_gather')""").fetchall())

        results = []
        plans = {}
        with psycopg.connect(url, autocommit=True) as su, api_connection(url, member) as api:
            for label, query, extra, who in QUERIES:
                conn = api if who == "api" else su
                params = {"tenant": tenant, **extra}
                log(f"measuring {label}")
                res = timed(conn, query, params, args.warmup, args.iterations)
                results.append((label, res))
                plans[label] = explain(conn, query, params)
                if query is SEARCH:
                    plans[label + ": statement inside search_content"] = nested_plan(url, member, query, params)
            for stmt in args.try_index:
                log(f"trying {stmt}")
                su.execute(stmt)
                su.execute("ANALYZE content")
                label = f"listing (authenticated, RLS) with `{stmt}`"
                params = {"tenant": tenant}
                results.append((label, timed(api, LISTING, params, args.warmup, args.iterations)))
                plans[label] = explain(api, LISTING, params)
    finally:
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db)))

    # ----------------------------------------------------------------------- report
    cmd = "  ".join([".venv/bin/python bench/bench_schema.py", *sys.argv[1:]])
    print(f"Command: `{cmd}` (run on {time.strftime('%Y-%m-%d')}).\n")
    print(f"Data: {facts[0]:,} content rows, {args.tenants} tenants x 5 users; measured tenant has "
          f"{facts[1]:,} rows ({facts[2]:,} published); content table {facts[4]} heap, {facts[3]} with indexes "
          f"and TOAST. Caller: a plain `member` of that tenant. {args.warmup} warm-up + {args.iterations} timed "
          "runs per query; client wall time, execute + fetch, local TCP.\n")
    print("Build times:\n")
    for k, v in times.items():
        print(f"- {k}: {v:.1f} s")
    print(f"- total: {sum(times.values()):.1f} s\n")
    print("| query | median ms | p95 ms | min ms | rows |\n|---|---|---|---|---|")
    for label, r in results:
        print(f"| {label} | {r['median']:.2f} | {r['p95']:.2f} | {r['min']:.2f} | {r['rows']} |")
    print("\nMachine and server:\n\n```")
    print(f"python {platform.python_version()}, psycopg {psycopg.__version__}, {platform.platform()}")
    print("nproc:", sh("nproc"))
    print(sh("lscpu | grep 'Model name'"))
    print(sh("free -h"))
    print(facts[5])
    print(", ".join(f"{k}={v}" for k, v in settings.items()))
    print("```\n\nPlans (EXPLAIN (ANALYZE, BUFFERS, COSTS OFF), one run after the timed ones):\n")
    for label, plan in plans.items():
        print(f"{label}:\n\n```\n{trim(plan)}\n```\n")


if __name__ == "__main__":
    main()
