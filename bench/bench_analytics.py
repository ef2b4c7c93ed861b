"""The analytics refresh before and after the daily rollups (seed defect 36), run by hand:

    .venv/bin/python bench/bench_scheduler.py --keep --no-diagnose --reps 1   # builds cf_bench_sched
    .venv/bin/python bench/bench_analytics.py [--source-db cf_bench_sched] [--reps 5] [--new-events 5000]

Each repetition copies the database built by the scheduler benchmark (``CREATE DATABASE ...
TEMPLATE``; 1 M engagement events, 100,000 content rows, 200,000 progress rows by default) and,
in that copy, creates the analytics view exactly as migration 0007 defined it (its statement read
from the file, under another name) beside the current one. Then, alternating which goes first:

1. first refresh: the 0007 view's full refresh vs ``app_private.refresh_content_analytics()`` on
   the never-rolled-up copy (the first roll-up of every event, then the full refresh);
2. steady state: ``--new-events`` events of the last hour are added, then the 0007 view's
   concurrent refresh vs ``refresh_content_analytics()`` (roll-up of the recent days, then the
   concurrent refresh), twice in a row each;
3. check: on every row, the all-time columns of both views agree (views, unique views, likes,
   shares, bookmarks, comments, completions, completion rate, last activity, average progress and
   time). The 7- and 30-day columns differ on purpose (whole UTC days now, a sliding window then).

Both refreshes run with the settings of their refresh function (``work_mem = 64MB``, ``jit = off``).
Prints medians (and min-max) over the repetitions and the ratio new / 0007.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import conninfo  # noqa: E402

ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MIGRATION_0007 = HERE.parent / "schema" / "migrations" / "0007_engagement_and_analytics.sql"
SAME = ["total_views", "unique_views", "likes", "shares", "bookmarks", "comments", "completions",
        "completion_rate", "last_activity", "avg_progress", "avg_time_spent"]


def view_0007() -> str:
    text = MIGRATION_0007.read_text()
    m = re.search(r"CREATE MATERIALIZED VIEW app_private\.content_performance_summary AS(.*?)WITH NO DATA;", text, re.S)
    assert m, "0007's view statement not found"
    return f"CREATE MATERIALIZED VIEW app_private.perf_0007 AS{m.group(1)}WITH NO DATA"


def timed(conn: psycopg.Connection, statement: str) -> float:
    start = time.perf_counter()
    conn.execute(statement)
    return time.perf_counter() - start


def add_events(conn: psycopg.Connection, n: int, rep: int) -> None:
    """n events of the last hour, spread over up to 20,000 published items."""
    conn.execute("""
        WITH pc AS (SELECT array_agg(id) AS ids, array_agg(tenant_id) AS tids, count(*)::int AS k
                    FROM (SELECT id, tenant_id FROM public.content WHERE status = 'published'
                          ORDER BY id LIMIT 20000) x)
        INSERT INTO public.content_engagement (tenant_id, content_id, session_id, event_type,
                                               idempotency_key, created_at)
        SELECT pc.tids[1 + (g * 7919) %% pc.k], pc.ids[1 + (g * 7919) %% pc.k], 's' || (g %% 500),
               (ARRAY['view','view','view','like','share','completion'])[1 + g %% 6]::public.engagement_event_enum,
               format('bench-%%s-%%s', %s::int, g), now() - make_interval(secs => g %% 3600)
        FROM pc, generate_series(1, %s) g""", (rep, n))


def one_rep(source: str, rep: int, new_events: int) -> dict[str, float]:
    name = f"{source}_an{rep}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(source)))
    out: dict[str, float] = {}
    try:
        with psycopg.connect(conninfo(ADMIN, dbname=name), autocommit=True) as c:
            c.execute("SET work_mem = '64MB'")
            c.execute("SET jit = off")
            c.execute(view_0007())
            c.execute("CREATE UNIQUE INDEX ON app_private.perf_0007 (content_id)")
            c.execute("VACUUM ANALYZE")
            old_first = "REFRESH MATERIALIZED VIEW app_private.perf_0007"
            old_next = "REFRESH MATERIALIZED VIEW CONCURRENTLY app_private.perf_0007"
            new = "SELECT app_private.refresh_content_analytics()"
            order = [("old", old_first), ("new", new)]
            for label, stmt in (order if rep % 2 else order[::-1]):
                out[f"first_{label}"] = timed(c, stmt)
            add_events(c, new_events, rep)
            order = [("old", old_next), ("new", new)]
            for i in (1, 2):
                for label, stmt in (order if (rep + i) % 2 else order[::-1]):
                    out[f"steady{i}_{label}"] = timed(c, stmt)
            cols = ", ".join(SAME)
            diff = c.execute(f"""
                SELECT count(*) FROM (
                  (SELECT content_id, {cols} FROM app_private.perf_0007
                   EXCEPT SELECT content_id, {cols} FROM app_private.content_performance_summary)
                  UNION ALL
                  (SELECT content_id, {cols} FROM app_private.content_performance_summary
                   EXCEPT SELECT content_id, {cols} FROM app_private.perf_0007)) d""").fetchone()
            rows = c.execute("SELECT count(*) FROM app_private.perf_0007").fetchone()
            assert diff is not None and rows is not None
            out["rows_differing"], out["rows"] = diff[0], rows[0]
            sizes = c.execute("""SELECT pg_total_relation_size('app_private.content_engagement_daily'),
                                        (SELECT count(*) FROM app_private.content_engagement_daily),
                                        pg_total_relation_size('app_private.content_viewers'),
                                        pg_total_relation_size('app_private.content_engagement_totals'),
                                        (SELECT count(*) FROM public.content_engagement)""").fetchone()
            assert sizes is not None
            out.update(daily_mb=sizes[0] / 2**20, daily_rows=sizes[1], viewers_mb=sizes[2] / 2**20,
                       totals_mb=sizes[3] / 2**20, events=sizes[4])
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source-db", default="cf_bench_sched")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new-events", type=int, default=5000)
    args = ap.parse_args()
    runs = []
    for rep in range(1, args.reps + 1):
        r = one_rep(args.source_db, rep, args.new_events)
        print(f"# rep {rep}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()), file=sys.stderr, flush=True)
        runs.append(r)

    def med(key: str) -> str:
        vals = [r[key] for r in runs]
        return f"{statistics.median(vals):.3f} ({min(vals):.3f}–{max(vals):.3f})"

    def ratio(new: str, old: str) -> str:
        return f"{statistics.median(r[new] / r[old] for r in runs):.2f}"

    print("| refresh | 0007 view (s) | rollups (s) | ratio rollups / 0007 (median of per-rep ratios) |")
    print("|---|---|---|---|")
    print(f"| first (0007: full; rollups: first roll-up of every event + full) | {med('first_old')} | "
          f"{med('first_new')} | {ratio('first_new', 'first_old')} |")
    for i in (1, 2):
        print(f"| steady state, run {i} after {args.new_events:,} new events (concurrent) | {med(f'steady{i}_old')} | "
              f"{med(f'steady{i}_new')} | {ratio(f'steady{i}_new', f'steady{i}_old')} |")
    last = runs[-1]
    print(f"\n{args.reps} repetitions; {int(last['events']):,} events, {int(last['rows']):,} view rows; rows whose "
          f"all-time columns differ between the two views: {[int(r['rows_differing']) for r in runs]}; "
          f"rollups: {int(last['daily_rows']):,} daily rows ({last['daily_mb']:.1f} MB), viewers "
          f"{last['viewers_mb']:.1f} MB, totals {last['totals_mb']:.1f} MB.")


if __name__ == "__main__":
    main()
