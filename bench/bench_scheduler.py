"""Scheduler benchmark (issue 6, "Done when"), run by hand:

    .venv/bin/python bench/bench_scheduler.py [--content 100000 --events 1000000 --reps 3]

What it does, against the PostgreSQL of ``--admin-url`` (default postgres@127.0.0.1:5432):

1. drops and creates the database ``--db`` (default ``cf_bench_sched``) and applies
   ``schema/migrations`` with ``schema.migrate``;
2. builds a realistic data set in SQL (``INSERT ... SELECT generate_series``, every row through the
   real triggers: block validation, change log, block-asset links, tag counts, job roll-ups,
   foreign keys):
   - ``--tenants`` tenants with 5 staff each (owner, editor, author, 2 members) and ``--readers``
     reader accounts (members, spread over the tenants);
   - ``--content`` content rows, round-robin over the tenants: 78 % published (1 % of them with an
     ``unpublish_at`` in the past, 1 % in the future), 5 % scheduled with ``scheduled_for`` in the
     past week (work for *publish*), 2 % scheduled in the future, 8 % draft, 7 % archived;
     heading + paragraph blocks, and an image block on the first 5,000 + 200 rows (linking ready
     and failed assets); 2 % hold an expired collaboration lock, 2 % a live one;
   - assets: 10,000 ready images with 6 jobs each (80 % completed 30 days ago: work for the job
     purge), 2,000 failed 30 days ago with two stored files each in a temporary ``file://`` storage
     (200 of them still used by a block: they must stay), 1,000 uploads stuck for 2 days, 300
     processing assets whose running job's lease expired (work for the reclaim);
   - ``--events`` engagement rows over the last 360 days (one partition per month, created first
     with ``ensure_engagement_partitions(0, month)``), popularity skewed (a few items get most
     events), 60 % by signed-in readers, 65 % views; plus ``--old-events`` rows in three months
     older than the 13-month retention (work for *partitions*, which drops them);
   - ``--progress`` ``user_content_progress`` rows, 20,000 editing sessions (16,000 stale or
     disconnected), 200 tags per tenant with two tags per content (10 % of the tags' counts then
     skewed so the recount has work), ``--search-queries`` search queries (60 % past the 90-day
     retention);
   then ``VACUUM ANALYZE`` and ``CHECKPOINT``.
3. for each of ``--reps`` repetitions: copies the built database (``CREATE DATABASE ... TEMPLATE``,
   so every repetition starts from the same state) and a fresh copy of the stored files, then runs
   each task through ``scheduler.runner.run_task`` (the real lock, run history and connection) in
   the order publish, jobs, sessions, analytics, partitions, nightly: a first run (the backlog
   above; analytics: the full first refresh) and a second run right after (steady state;
   analytics: concurrent). It records the task's own time (``RunOutcome.seconds``), the wall time
   of ``run_task``, and the time of every SQL statement the task issued (a thin proxy around the
   task's connection that only times ``execute``). Reported figures are medians over the
   repetitions.
4. a diagnostic pass on one more copy: the same runs with ``auto_explain`` (``log_analyze``,
   buffers, nested statements) in the task's session, keeping the plans of statements slower than
   ``--explain-ms``; these runs are slower (instrumented) and are not part of the timings.
5. drops every database it created and the storage directories (``--keep`` keeps the built one,
   ``--reuse`` skips the build when it exists).

It prints a Markdown report (machine, PostgreSQL version and settings, data set, build times,
results, per-statement breakdown, plans) on stdout and writes the raw figures to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
from common import conninfo, sh
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contentforge.db import connect  # noqa: E402
from contentforge.logging import configure_logging  # noqa: E402
from contentforge.settings import Settings  # noqa: E402
from scheduler import runner  # noqa: E402
from scheduler.tasks import TASKS, TaskContext  # noqa: E402
from schema.named_queries import queries  # noqa: E402

ORDER = ["publish", "jobs", "sessions", "analytics", "partitions", "nightly"]
N_READY, N_READY_USED, JOBS_PER_READY = 10_000, 5_000, 6
N_FAILED, N_FAILED_USED = 2_000, 200
N_STUCK, N_LEASED = 1_000, 300
N_SESSIONS, N_STALE_SESSIONS, N_DISCONNECTED = 20_000, 15_000, 1_000
TAGS_PER_TENANT = 200
OLD_MONTHS = (14, 15, 16)  # months back; retention 13 => these partitions are dropped




def log(msg: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def admin_exec(admin_url: str, stmt: sql.Composable | str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(stmt)


def drop_db(admin_url: str, name: str) -> None:
    admin_exec(admin_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def db_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


# --------------------------------------------------------------------------- build

H = """CREATE FUNCTION pg_temp.h(i bigint, salt int) RETURNS int LANGUAGE sql IMMUTABLE AS
       'SELECT abs(hashint8(i * 7 + salt::bigint * 1000000007) % 1000000)'"""


def build(url: str, a: argparse.Namespace) -> dict[str, float]:
    """Fill the migrated database; return the build time of each step."""
    times: dict[str, float] = {}
    T = a.tenants

    def step(name: str) -> Any:
        class _Step:
            def __enter__(self) -> None:
                self.t0 = time.perf_counter()
                log(f"build: {name} ...")

            def __exit__(self, *exc: Any) -> None:
                times[name] = time.perf_counter() - self.t0
                log(f"build: {name} {times[name]:.1f} s")
        return _Step()

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(H)
        p = {"T": T, "readers": a.readers}

        with step("users, tenants, memberships"):
            conn.execute("""
                CREATE TABLE public.bench_users AS
                SELECT n, CASE WHEN n <= %(T)s * 5 THEN 1 + (n - 1) / 5 ELSE 1 + n %% %(T)s END AS tenant_no,
                       CASE WHEN n <= %(T)s * 5 THEN (ARRAY['owner','editor','author','member','member'])[1 + (n - 1) %% 5]
                            ELSE 'reader' END AS slot,
                       gen_random_uuid() AS user_id
                FROM generate_series(1, %(T)s * 5 + %(readers)s) n""", p)
            conn.execute("CREATE INDEX ON public.bench_users (n)")
            conn.execute("""
                INSERT INTO auth.users (id, email, raw_user_meta_data)
                SELECT user_id, format('u%s@bench.test', n), jsonb_build_object('full_name', format('User %s', n))
                FROM public.bench_users""")
            conn.execute("""
                CREATE TABLE public.bench_tenants AS
                SELECT t AS tenant_no, gen_random_uuid() AS id FROM generate_series(1, %(T)s) t""", p)
            conn.execute("""
                INSERT INTO public.tenants (id, name, slug) SELECT id, format('Tenant %s', tenant_no),
                       format('bench-tenant-%s', tenant_no) FROM public.bench_tenants""")
            conn.execute("""
                INSERT INTO public.tenant_memberships (tenant_id, user_id, role, joined_at)
                SELECT t.id, u.user_id, CASE WHEN u.slot = 'reader' THEN 'member' ELSE u.slot END, now()
                FROM public.bench_users u JOIN public.bench_tenants t USING (tenant_no)""")
            conn.execute("""CREATE TABLE public.bench_staff AS
                SELECT tenant_no, max(user_id::text) FILTER (WHERE slot = 'owner')::uuid AS owner_id,
                       max(user_id::text) FILTER (WHERE slot = 'editor')::uuid AS editor_id,
                       max(user_id::text) FILTER (WHERE slot = 'author')::uuid AS author_id
                FROM public.bench_users WHERE slot <> 'reader' GROUP BY tenant_no""")
            conn.execute("""CREATE TABLE public.bench_readers AS
                SELECT row_number() OVER (ORDER BY n) - 1 AS r, user_id FROM public.bench_users WHERE slot = 'reader'""")
            conn.execute("CREATE INDEX ON public.bench_readers (r)")

        with step("assets"):
            conn.execute("""
                CREATE TABLE public.bench_assets AS
                SELECT k.kind, n, gen_random_uuid() AS id,
                       CASE k.kind WHEN 'B' THEN 1 + (n + %(ru)s) %% %(T)s ELSE 1 + n %% %(T)s END AS tenant_no
                FROM (VALUES ('A', %(nA)s), ('B', %(nB)s), ('C', %(nC)s), ('D', %(nD)s)) k(kind, cnt),
                     generate_series(1, k.cnt) n""",
                         {"T": T, "ru": N_READY_USED, "nA": N_READY, "nB": N_FAILED, "nC": N_STUCK, "nD": N_LEASED})
            conn.execute("CREATE INDEX ON public.bench_assets (kind, n)")
            conn.execute("""
                INSERT INTO public.assets (id, tenant_id, creator_id, original_filename, file_type, mime_type, file_size,
                                           storage_path, processing_status, processing_error, variants,
                                           created_at, updated_at)
                SELECT a.id, t.id, s.author_id, format('photo-%s-%s.jpg', a.kind, a.n), 'image', 'image/jpeg',
                       100000 + a.n, format('%s/%s/original.jpg', t.id, a.id),
                       (CASE a.kind WHEN 'A' THEN 'ready' WHEN 'B' THEN 'failed' WHEN 'C' THEN 'uploading'
                                    ELSE 'processing' END)::public.asset_status_enum,
                       CASE WHEN a.kind = 'B' THEN 'metadata: cannot decode image' END,
                       CASE WHEN a.kind IN ('A', 'B') THEN jsonb_build_object('thumb_160.webp', jsonb_build_object(
                         'key', format('%s/%s/variants/thumb_160.webp', t.id, a.id), 'format', 'webp',
                         'width', 160, 'height', 120, 'bytes', 4000)) ELSE '{}' END,
                       now() - interval '40 days',
                       CASE a.kind WHEN 'B' THEN now() - interval '30 days' WHEN 'C' THEN now() - interval '2 days'
                                   ELSE now() - interval '35 days' END
                FROM public.bench_assets a JOIN public.bench_tenants t USING (tenant_no)
                JOIN public.bench_staff s USING (tenant_no)""")

        with step(f"content ({a.content:,} rows, through the block-validating trigger)"):
            chunk = 25_000
            for start in range(1, a.content + 1, chunk):
                stop = min(a.content, start + chunk - 1)
                conn.execute("""
                    WITH g AS (
                      SELECT i, 1 + i %% %(T)s::int AS tenant_no, pg_temp.h(i, 1) %% 100 AS s, pg_temp.h(i, 2) AS x
                      FROM generate_series(%(start)s::bigint, %(stop)s::bigint) i
                    ), r AS (
                      SELECT g.*, CASE WHEN s < 78 THEN 'published' WHEN s < 83 THEN 'due' WHEN s < 85 THEN 'future'
                                       WHEN s < 93 THEN 'draft' ELSE 'archived' END AS ckind
                      FROM g
                    )
                    INSERT INTO public.content (tenant_id, creator_id, content_type, title, slug, excerpt, blocks,
                        status, published_at, scheduled_for, unpublish_at, archived_at, lock_owner_id, lock_expires_at,
                        created_at)
                    SELECT t.id, CASE WHEN x %% 2 = 0 THEN st.author_id ELSE st.owner_id END,
                           ((ARRAY['article','blog_post','video_lesson','podcast_episode','newsletter','case_study'])[1 + x %% 6])::public.content_type_enum,
                           format('Bench article %%s about topic %%s', i, x %% 500),
                           format('bench-%%s', i),
                           format('A short excerpt of article %%s.', i),
                           jsonb_build_array(
                             jsonb_build_object('type', 'heading', 'content', format('Part %%s', x %% 50), 'level', 2),
                             jsonb_build_object('type', 'paragraph', 'content',
                               format('Paragraph %%s of the benchmark: the basics, the pitfalls and a worked example about topic %%s.', i, x %% 500)))
                           || CASE WHEN la.id IS NOT NULL THEN jsonb_build_array(jsonb_build_object('type', 'image', 'asset_id', la.id::text, 'alt', 'figure'))
                                   WHEN lb.id IS NOT NULL THEN jsonb_build_array(jsonb_build_object('type', 'image', 'asset_id', lb.id::text, 'alt', 'figure'))
                                   ELSE '[]'::jsonb END,
                           (CASE WHEN r.ckind IN ('due', 'future') THEN 'scheduled' ELSE r.ckind END)::public.content_status_enum,
                           CASE WHEN r.ckind IN ('published', 'archived')
                                THEN now() - make_interval(days => 1 + (x %% 720)::int, mins => ((x / 720) %% 1440)::int) END,
                           CASE WHEN r.ckind = 'due' THEN now() - make_interval(mins => 1 + (x %% 10080)::int)
                                WHEN r.ckind = 'future' THEN now() + make_interval(days => 1 + (x %% 30)::int) END,
                           CASE WHEN r.ckind = 'published' AND x %% 100 = 0 THEN now() - make_interval(hours => 1 + (x %% 48)::int)
                                WHEN r.ckind = 'published' AND x %% 100 = 1 THEN now() + interval '30 days' END,
                           CASE WHEN r.ckind = 'archived' THEN now() - make_interval(days => (x %% 30)::int) END,
                           CASE WHEN i %% 50 IN (0, 1) THEN st.editor_id END,
                           CASE WHEN i %% 50 = 0 THEN now() - interval '1 hour' WHEN i %% 50 = 1 THEN now() + interval '1 hour' END,
                           now() - make_interval(days => 2 + (x %% 900)::int)
                    FROM r
                    JOIN public.bench_tenants t USING (tenant_no)
                    JOIN public.bench_staff st USING (tenant_no)
                    LEFT JOIN public.bench_assets la ON la.kind = 'A' AND la.n = r.i AND r.i <= %(ru)s
                    LEFT JOIN public.bench_assets lb ON lb.kind = 'B' AND lb.n = r.i - %(ru)s
                                                    AND r.i > %(ru)s AND r.i <= %(ru)s + %(fu)s
                """, {"T": T, "start": start, "stop": stop, "ru": N_READY_USED, "fu": N_FAILED_USED})
                log(f"content rows {stop:,}/{a.content:,}")
            conn.execute("""CREATE TABLE public.bench_pub AS
                SELECT row_number() OVER (ORDER BY id) AS k, id, tenant_id FROM public.content
                WHERE status = 'published'""")
            conn.execute("CREATE UNIQUE INDEX ON public.bench_pub (k)")
            conn.execute("ANALYZE public.bench_pub")

        with step("jobs (60,000 finished + 300 with an expired lease, through the roll-up trigger)"):
            conn.execute("""
                INSERT INTO public.asset_processing_jobs (tenant_id, asset_id, job_type, status, input_params, progress,
                    attempts, max_attempts, run_after, worker_id, created_at, started_at, completed_at, output_data)
                SELECT ast.tenant_id, ast.id, (ARRAY['metadata','thumbnail','optimize'])[1 + j %% 3], 'completed',
                       jsonb_build_object('variant', j), 100, 1, 3, ts - interval '1 minute', 'bench-worker-1',
                       ts - interval '1 minute', ts - interval '30 seconds', ts, '{"ok": true}'
                FROM public.bench_assets a JOIN public.assets ast ON ast.id = a.id,
                     generate_series(1, %(jpa)s) j,
                     LATERAL (SELECT CASE WHEN (a.n + j) %% 5 = 0 THEN now() - interval '1 day'
                                          ELSE now() - interval '30 days' END AS ts) x
                WHERE a.kind = 'A'""", {"jpa": JOBS_PER_READY})
            conn.execute("""
                INSERT INTO public.asset_processing_jobs (tenant_id, asset_id, job_type, status, attempts, max_attempts,
                    worker_id, heartbeat_at, lease_expires_at, started_at, run_after)
                SELECT ast.tenant_id, ast.id, 'metadata', 'running', 1, 3, 'bench-dead-worker',
                       now() - interval '6 minutes', now() - interval '5 minutes', now() - interval '10 minutes',
                       now() - interval '10 minutes'
                FROM public.bench_assets a JOIN public.assets ast ON ast.id = a.id WHERE a.kind = 'D'""")

        with step("engagement partitions (past months)"):
            months = [m for m in range(1, 14)] + list(OLD_MONTHS)
            for m in months:
                conn.execute("SELECT * FROM app_private.ensure_engagement_partitions(0, "
                             "(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => %s)) AT TIME ZONE 'UTC')",
                             (m,))

        with step(f"engagement ({a.events:,} rows in the last 360 days + {a.old_events:,} past the retention)"):
            npub = conn.execute("SELECT count(*) AS n FROM public.bench_pub").fetchone()[0]
            ev = """
                INSERT INTO public.content_engagement (tenant_id, content_id, user_id, session_id, event_type, event_data,
                    idempotency_key, user_agent, ip_address, referrer, utm_source, created_at)
                SELECT p.tenant_id, p.id, CASE WHEN g.u < 60 THEN rd.user_id END,
                       CASE WHEN g.u >= 60 THEN 'sess-' || (g.x %% 200000) END,
                       (CASE WHEN g.e < 65 THEN 'view' WHEN g.e < 75 THEN 'start_reading' WHEN g.e < 83 THEN 'progress'
                             WHEN g.e < 88 THEN 'completion' WHEN g.e < 92 THEN 'like' WHEN g.e < 95 THEN 'bookmark'
                             WHEN g.e < 97 THEN 'share' WHEN g.e < 99 THEN 'comment' ELSE 'download' END)::public.engagement_event_enum,
                       CASE WHEN g.e >= 75 AND g.e < 83 THEN jsonb_build_object('percent', g.x %% 100) ELSE '{}' END,
                       'c:bench-' || g.i,
                       'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
                       ('10.' || (g.x %% 250) || '.' || (g.x / 250 %% 250) || '.' || (g.i %% 250))::inet,
                       CASE WHEN g.x %% 3 = 0 THEN 'https://news.example.com/' END,
                       CASE WHEN g.x %% 7 = 0 THEN 'newsletter' END,
                       g.at
                FROM (
                  SELECT i, pg_temp.h(i, 3) %% 100 AS u, pg_temp.h(i, 4) %% 100 AS e, pg_temp.h(i, 5) AS x,
                         1 + floor(%(npub)s * power(pg_temp.h(i, 6) / 1000000.0, 2))::bigint AS k,
                         {at} AS at
                  FROM generate_series(%(start)s::bigint, %(stop)s::bigint) i
                ) g
                JOIN public.bench_pub p ON p.k = g.k
                LEFT JOIN public.bench_readers rd ON rd.r = g.x %% %(readers)s
            """
            recent = "now() - make_interval(secs => (pg_temp.h(i, 7)::bigint * 311040 / 10000)::double precision + (i % 97))"
            chunk = 100_000
            for start in range(1, a.events + 1, chunk):
                stop = min(a.events, start + chunk - 1)
                conn.execute(ev.replace("{at}", recent.replace("%", "%%")),
                             {"npub": npub, "start": start, "stop": stop, "readers": a.readers})
                log(f"engagement rows {stop:,}/{a.events:,}")
            old = ("(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => %(m)s)) AT TIME ZONE 'UTC'"
                   " + make_interval(secs => (pg_temp.h(i, 8)::bigint * 2419200 / 1000000)::double precision)")
            per = a.old_events // len(OLD_MONTHS)
            for j, m in enumerate(OLD_MONTHS):
                start = a.events + 1 + j * per
                conn.execute(ev.replace("{at}", old), {"npub": npub, "start": start, "stop": start + per - 1,
                                                 "readers": a.readers, "m": m})

        with step(f"user_content_progress ({a.progress:,} rows)"):
            conn.execute("""
                INSERT INTO public.user_content_progress (tenant_id, user_id, content_id, progress_percentage,
                    completion_status, started_at, last_accessed_at, completed_at, total_time_spent_seconds, visit_count)
                SELECT p.tenant_id, rd.user_id, p.id, g.pct,
                       CASE WHEN g.pct = 100 THEN 'completed' WHEN g.pct > 0 THEN 'in_progress' ELSE 'not_started' END,
                       now() - interval '20 days', now() - make_interval(days => (g.x %% 20)::int),
                       CASE WHEN g.pct = 100 THEN now() - interval '1 day' END, g.x %% 3600, 1 + g.x %% 5
                FROM (SELECT i, i %% %(readers)s AS r, pg_temp.h(i, 9) AS x,
                             least(100, pg_temp.h(i, 10) %% 130) AS pct,
                             1 + ((i %% %(readers)s) * 37 + (i / %(readers)s) * 997) %% %(npub)s AS k
                      FROM generate_series(1, %(n)s) i) g
                JOIN public.bench_readers rd ON rd.r = g.r
                JOIN public.bench_pub p ON p.k = g.k
                ON CONFLICT DO NOTHING""", {"readers": a.readers, "npub": npub, "n": a.progress})

        with step("editing sessions, tags and categorizations, search queries"):
            conn.execute("""
                INSERT INTO public.editing_sessions (tenant_id, content_id, user_id, user_name, connected_at, last_seen_at,
                                                     disconnected_at, cursor_position)
                SELECT p.tenant_id, p.id, rd.user_id, format('Reader %%s', i),
                       now() - interval '3 hours',
                       CASE WHEN i <= %(stale)s THEN now() - make_interval(mins => 61 + i %% 600) ELSE now() - interval '10 seconds' END,
                       CASE WHEN i > %(stale)s AND i <= %(stale)s + %(disc)s THEN now() - interval '5 minutes' END,
                       jsonb_build_object('block', i %% 3, 'offset', i %% 100)
                FROM generate_series(1, %(n)s) i
                JOIN public.bench_pub p ON p.k = i
                JOIN public.bench_readers rd ON rd.r = i %% %(readers)s""",
                         {"n": N_SESSIONS, "stale": N_STALE_SESSIONS, "disc": N_DISCONNECTED, "readers": a.readers})
            conn.execute("""
                INSERT INTO public.content_tags (tenant_id, name, slug)
                SELECT t.id, format('Tag %%s', g), format('tag-%%s', g)
                FROM public.bench_tenants t, generate_series(0, %(n)s - 1) g""", {"n": TAGS_PER_TENANT})
            conn.execute("""CREATE TABLE public.bench_tags AS
                SELECT tenant_id, (substr(slug, 5))::int AS g, id FROM public.content_tags""")
            conn.execute("CREATE INDEX ON public.bench_tags (tenant_id, g)")
            # two distinct tags per content (i % 200 and (7i + 3) % 200 never coincide), through the count trigger
            conn.execute("""
                INSERT INTO public.content_categorizations (tenant_id, content_id, tag_id)
                SELECT c.tenant_id, c.id, bt.id
                FROM (SELECT id, tenant_id, row_number() OVER (ORDER BY id) AS i FROM public.content) c
                CROSS JOIN LATERAL (VALUES (c.i %% %(n)s), ((7 * c.i + 3) %% %(n)s)) v(g)
                JOIN public.bench_tags bt ON bt.tenant_id = c.tenant_id AND bt.g = v.g""", {"n": TAGS_PER_TENANT})
            # drift, as after a crash between a categorization and its count: 10 % of the tags are off
            conn.execute("UPDATE public.content_tags SET usage_count = usage_count + 3 "
                         "WHERE (substr(slug, 5))::int % 10 = 0")
            conn.execute("""
                INSERT INTO public.search_queries (tenant_id, query, result_count, user_id, created_at)
                SELECT t.id, format('topic %%s', i %% 500), i %% 40, rd.user_id,
                       CASE WHEN i %% 10 < 6 THEN now() - make_interval(days => 91 + i %% 270)
                            ELSE now() - make_interval(days => i %% 89) END
                FROM generate_series(1, %(n)s) i
                JOIN public.bench_tenants t ON t.tenant_no = 1 + i %% %(T)s
                JOIN public.bench_readers rd ON rd.r = i %% %(readers)s""",
                         {"n": a.search_queries, "T": T, "readers": a.readers})

        with step("VACUUM ANALYZE, CHECKPOINT"):
            for t in ("bench_users", "bench_tenants", "bench_staff", "bench_readers", "bench_assets", "bench_pub",
                      "bench_tags"):
                conn.execute(sql.SQL("DROP TABLE public.{}").format(sql.Identifier(t)))
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
    return times


def failed_asset_files(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT unnest(ARRAY[storage_path, variants -> 'thumb_160.webp' ->> 'key']) FROM public.assets "
            "WHERE processing_status = 'failed'")]


def make_storage(keys: list[str]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="cf_bench_sched_storage_"))
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 64)
    return root


def dataset(url: str) -> list[tuple[str, str, str]]:
    """(table, rows, total size) of the tables the tasks touch."""
    tables = ["content", "content_engagement", "user_content_progress", "content_changes", "editing_sessions",
              "content_tags", "content_categorizations", "assets", "content_assets", "asset_processing_jobs",
              "search_queries"]
    out = []
    with psycopg.connect(url) as conn:
        for t in tables:
            n = conn.execute(sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(t))).fetchone()[0]
            size = conn.execute(
                "SELECT pg_size_pretty(coalesce(sum(pg_total_relation_size(relid)), pg_total_relation_size(%s::regclass))) "
                "FROM pg_partition_tree(%s::regclass)", (f"public.{t}", f"public.{t}")).fetchone()[0]
            out.append((t, f"{n:,}", size))
        extra = conn.execute("""
            SELECT (SELECT count(*) FROM public.content WHERE status = 'scheduled' AND scheduled_for <= now()) AS due,
                   (SELECT count(*) FROM public.content WHERE status = 'published' AND unpublish_at <= now()) AS unpublish,
                   (SELECT count(*) FROM public.content WHERE status = 'published') AS published,
                   (SELECT count(*) FROM public.content WHERE lock_expires_at < now()) AS expired_locks,
                   (SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.content_engagement'::regclass) AS parts,
                   pg_size_pretty(pg_database_size(current_database())) AS db_size""").fetchone()
        out.append(("(scheduled and due / published with unpublish_at past / published / expired locks)",
                    f"{extra[0]:,} / {extra[1]:,} / {extra[2]:,} / {extra[3]:,}", ""))
        out.append(("(engagement partitions incl. default / database size)", str(extra[4]), extra[5]))
    return out


# --------------------------------------------------------------------------- measure


class TimingConn:
    """Delegates to a connection; records the time of each ``execute`` under the query's name."""

    def __init__(self, conn: psycopg.Connection[Any], sink: list[tuple[str, float]]) -> None:
        self._conn = conn
        self._sink = sink
        self._names = {v: k for k, v in queries("scheduler").items()}

    def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
        if isinstance(query, str):
            label = self._names.get(query, " ".join(query.split())[:60])
        else:
            label = query.as_string(self._conn)
            for word in ("content_engagement_y",):  # one label for every partition
                if word in label and "DETACH" in label:
                    label = "ALTER TABLE content_engagement DETACH PARTITION"
                elif word in label and label.startswith("DROP TABLE"):
                    label = "DROP TABLE (expired partition)"
            if label.startswith("SET LOCAL lock_timeout"):
                label = "SET LOCAL lock_timeout"
        t0 = time.perf_counter()
        try:
            return self._conn.execute(query, params, **kw)
        finally:
            self._sink.append((label, time.perf_counter() - t0))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


_statements: list[tuple[str, float]] = []


def _timed_context(conn: psycopg.Connection[Any], settings: Settings, storage_url: str) -> TaskContext:
    return TaskContext(TimingConn(conn, _statements), settings, storage_url)  # type: ignore[arg-type]


def run_all(url: str, settings: Settings, storage_url: str) -> list[dict[str, Any]]:
    """Every task twice, in ORDER; one record per run."""
    out = []
    for name in ORDER:
        for attempt in (1, 2):
            _statements.clear()
            t0 = time.perf_counter()
            res = runner.run_task(url, settings, name, storage_url=storage_url)
            wall = time.perf_counter() - t0
            if res.outcome != "succeeded":
                raise SystemExit(f"{name} run {attempt}: {res.outcome} {res.error or res.reason}")
            per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
            for label, secs in _statements:
                per[label][0] += secs
                per[label][1] += 1
            per["(outside SQL: Python, stored-file deletion)"] = [res.seconds - sum(s for _, s in _statements), 0]
            out.append({"task": name, "run": attempt, "seconds": res.seconds, "wall": wall, "rows": res.rows,
                        "details": res.details, "statements": {k: v for k, v in per.items()}})
            log(f"  {name} run {attempt}: {res.seconds:.3f} s, rows {res.rows}, {res.details}")
    return out


def diagnose(url: str, settings: Settings, storage_url: str, explain_ms: int) -> list[dict[str, Any]]:
    """Run the tasks (as run_all) in sessions with auto_explain; return the slow plans per run."""
    plans: list[dict[str, Any]] = []
    for name in ORDER:
        for attempt in (1, 2):
            notices: list[str] = []
            with connect(url, autocommit=True) as conn:
                conn.add_notice_handler(lambda d, sink=notices: sink.append(d.message_primary or ""))
                conn.execute("LOAD 'auto_explain'")
                for k, v in {"auto_explain.log_min_duration": f"{explain_ms}ms", "auto_explain.log_analyze": "on",
                             "auto_explain.log_buffers": "on", "auto_explain.log_nested_statements": "on",
                             "auto_explain.log_level": "notice", "auto_explain.log_timing": "on"}.items():
                    conn.execute("SELECT set_config(%s, %s, false)", (k, v))
                ctx = TaskContext(conn, settings, storage_url)
                t0 = time.perf_counter()
                TASKS[name].func(ctx)
                secs = time.perf_counter() - t0
            for n in notices:
                if n.startswith("duration:"):
                    plans.append({"task": name, "run": attempt, "task_seconds": secs, "plan": n})
            log(f"  diagnose {name} run {attempt}: {secs:.3f} s, {sum(n.startswith('duration:') for n in notices)} slow plans")
    return plans


# --------------------------------------------------------------------------- report


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def report(a: argparse.Namespace, machine: dict[str, str], pg: dict[str, str], build_times: dict[str, float],
           data: list[tuple[str, str, str]], reps: list[list[dict[str, Any]]], plans: list[dict[str, Any]],
           loads: list[str], settings: Settings) -> str:
    L: list[str] = []
    w = L.append
    w("## Scheduler\n")
    w(f"Command: `.venv/bin/python bench/bench_scheduler.py --content {a.content} --events {a.events} "
      f"--reps {a.reps}` (issue 6). Run on {time.strftime('%Y-%m-%d')}.\n")
    w("| task | first run: work done | first run (s) | second run (s), steady state | second run: work done |")
    w("|---|---|---|---|---|")
    by: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for rep in reps:
        for r in rep:
            by[(r["task"], r["run"])].append(r)

    def cell(rs: list[dict[str, Any]]) -> str:
        xs = [r["seconds"] for r in rs]
        s = f"{med(xs):.3f}"
        if len(xs) > 1:
            s += f" ({min(xs):.3f}–{max(xs):.3f})"
        return s

    def work(r: dict[str, Any]) -> str:
        d = dict(r["details"] or {})
        if "vacuumed" in d:
            d["vacuumed"] = len(d["vacuumed"])
        for k in ("created", "dropped"):
            if k in d:
                d[k] = len(d[k])
        return ", ".join(f"{k} {v}" for k, v in d.items())

    for name in ORDER:
        f, s = by[(name, 1)], by[(name, 2)]
        w(f"| {name} | {work(f[0])} | {cell(f)} | {cell(s)} | {work(s[0])} |")
    w("")
    w(f"Median of {a.reps} repetitions (min–max in brackets), each on a fresh copy of the same database; the "
      "time is `RunOutcome.seconds` (the task function; the runner's lock, history row and connection add "
      f"{med([r['wall'] - r['seconds'] for rep in reps for r in rep]) * 1000:.0f} ms median). First run = the "
      "backlog the data set holds; second run = right after, nothing left to do (analytics: first = full "
      "refresh of the never-populated view, second = `REFRESH ... CONCURRENTLY`).\n")

    w("Where the time goes (median seconds per statement, summed over the calls of one run; calls in brackets):\n")
    w("| task | run | statement | seconds | calls |")
    w("|---|---|---|---|---|")
    for name in ORDER:
        for run in (1, 2):
            rs = by[(name, run)]
            labels: list[str] = []
            for r in rs:
                for k in r["statements"]:
                    if k not in labels:
                        labels.append(k)
            for k in labels:
                secs = [r["statements"].get(k, [0.0, 0])[0] for r in rs]
                calls = rs[0]["statements"].get(k, [0.0, 0])[1]
                if med(secs) >= 0.01 or k.startswith("VACUUM"):
                    w(f"| {name} | {run} | `{k}` | {med(secs):.3f} | {calls or ''} |")
    w("")

    w("Data set (after the build, before the runs):\n")
    w("| table | rows | size incl. indexes |")
    w("|---|---|---|")
    for t, n, size in data:
        w(f"| {t} | {n} | {size} |")
    w("")
    w("Build times: " + "; ".join(f"{k} {v:.1f} s" for k, v in build_times.items())
      + f"; total {sum(build_times.values()):.0f} s.\n")
    w("Task settings (defaults): " + ", ".join(f"{k}={getattr(settings, k)}" for k in (
        "partition_months_ahead", "engagement_retention_months", "session_idle_minutes", "job_retention_days",
        "stuck_upload_hours", "failed_asset_retention_days", "search_query_retention_days")) + ".\n")
    w("Machine and server:\n")
    w("```")
    for k, v in machine.items():
        w(f"{k}: {v}")
    for k, v in pg.items():
        w(f"{k}: {v}")
    w("load average before each repetition: " + " | ".join(loads))
    w("```\n")
    if plans:
        w(f"Plans of statements slower than {a.explain_ms} ms (diagnostic pass with auto_explain, "
          "EXPLAIN ANALYZE timing overhead included):\n")
        for p in plans:
            w(f"{p['task']} run {p['run']} (task {p['task_seconds']:.2f} s under instrumentation):\n")
            w("```")
            w(trim(p["plan"]))
            w("```\n")
    return "\n".join(L)


def trim(plan: str, keep: int = 60) -> str:
    lines = plan.splitlines()
    if len(lines) <= keep:
        return plan
    return "\n".join([*lines[:keep], f"... ({len(lines) - keep} more lines)"])


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--admin-url", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--db", default="cf_bench_sched")
    ap.add_argument("--content", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--old-events", type=int, default=30_000)
    ap.add_argument("--progress", type=int, default=200_000)
    ap.add_argument("--search-queries", type=int, default=100_000)
    ap.add_argument("--tenants", type=int, default=5)
    ap.add_argument("--readers", type=int, default=2_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--explain-ms", type=int, default=1000)
    ap.add_argument("--no-diagnose", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the built database")
    ap.add_argument("--reuse", action="store_true", help="reuse the built database when it exists")
    ap.add_argument("--json", default="/tmp/bench_scheduler.json")
    a = ap.parse_args()

    configure_logging("console", "WARNING")
    logging.getLogger("contentforge").setLevel(logging.WARNING)
    from schema import migrate

    machine = {
        "python": f"{platform.python_version()}, {platform.platform()}",
        "nproc": sh("nproc"),
        "cpu": sh("lscpu | grep 'Model name'").replace("Model name:", "").strip(),
        "free -h": "\n" + sh("free -h"),
    }
    url = conninfo(a.admin_url, dbname=a.db)
    build_times: dict[str, float] = {}
    if not (a.reuse and db_exists(a.admin_url, a.db)):
        drop_db(a.admin_url, a.db)
        admin_exec(a.admin_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(a.db)))
        t0 = time.perf_counter()
        migrate(url)
        build_times["migrate"] = time.perf_counter() - t0
        build_times.update(build(url, a))
    with psycopg.connect(url) as conn:
        pg = {"server": conn.execute("SELECT version()").fetchone()[0]}
        for s in ("shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size",
                  "max_parallel_workers_per_gather", "jit", "synchronous_commit"):
            pg[s] = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(s))).fetchone()[0]
    data = dataset(url)
    files = failed_asset_files(url)
    tmp = Path(tempfile.mkdtemp(prefix="cf_bench_sched_data_"))
    settings = Settings(_env_file=None, data_dir=tmp)
    runner.TaskContext = _timed_context  # type: ignore[assignment] - times each statement, changes nothing else

    reps: list[list[dict[str, Any]]] = []
    loads: list[str] = []
    plans: list[dict[str, Any]] = []
    clones = [f"{a.db}_run{i}" for i in range(a.reps)] + ([] if a.no_diagnose else [f"{a.db}_diag"])
    try:
        for _i, clone in enumerate(clones):
            drop_db(a.admin_url, clone)
            t0 = time.perf_counter()
            admin_exec(a.admin_url, sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(clone), sql.Identifier(a.db)))
            storage = make_storage(files)
            log(f"{clone}: copied in {time.perf_counter() - t0:.1f} s, {len(files)} stored files")
            curl = conninfo(a.admin_url, dbname=clone)
            try:
                if clone.endswith("_diag"):
                    runner.TaskContext = TaskContext  # type: ignore[assignment]
                    plans = diagnose(curl, settings, storage.as_uri(), a.explain_ms)
                else:
                    loads.append(sh("cut -d' ' -f1-3 /proc/loadavg"))
                    reps.append(run_all(curl, settings, storage.as_uri()))
                    left = sum(1 for p in storage.rglob("*") if p.is_file())
                    log(f"{clone}: {left} stored files left (the 200 used failed assets keep theirs)")
            finally:
                drop_db(a.admin_url, clone)
                shutil.rmtree(storage, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not a.keep:
            drop_db(a.admin_url, a.db)

    Path(a.json).write_text(json.dumps({"args": vars(a), "machine": machine, "pg": pg, "build": build_times,
                                        "data": data, "reps": reps, "plans": plans, "loads": loads},
                                       indent=1, default=str))
    print(report(a, machine, pg, build_times, data, reps, plans, loads, settings))


if __name__ == "__main__":
    main()
