"""claim_job on a backlog, before and after migration 0014 (tenant_priority in the claim order).

    .venv/bin/python bench/bench_claim.py --tenants 200 --jobs-per-tenant 250 --claims 300 --rounds 5

Builds two databases on the PostgreSQL of TEST_DATABASE_URL: one migrated up to 0013 (baseline) and
one up to 0014, each with the same backlog (every tenant's jobs spread over 3 fleet priorities and,
in the 0014 database, 10 tenant priorities). Each round times --claims calls of claim_job in one
transaction that is rolled back (so the backlog is the same every time), alternating between the
two databases; reports the median per-claim time of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import psycopg
from psycopg import sql

from schema.runner import load_migrations, migrate

ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def db_url(name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def build(name: str, upto: int, tenants: int, per_tenant: int) -> str:
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = db_url(name)
    migrate(url, migrations=load_migrations()[:upto])
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("""INSERT INTO tenants (name, slug) SELECT 'T' || g, 't-' || g FROM generate_series(1, %s) g""",
                  (tenants,))
        c.execute("""INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path)
                     SELECT t.id, 'a.jpg', 'image', 'image/jpeg', 1, t.id || '/a' FROM tenants t""")
        extra = ", tenant_priority" if upto >= 14 else ""
        value = ", 1 + (g %% 10)" if upto >= 14 else ""
        c.execute(f"""INSERT INTO asset_processing_jobs (tenant_id, asset_id, job_type, priority, input_params{extra})
                      SELECT a.tenant_id, a.id, 'metadata', 4 + (g %% 3), jsonb_build_object('tag', g::text){value}
                      FROM assets a, generate_series(1, %s) g""", (per_tenant,))
        c.execute("VACUUM ANALYZE asset_processing_jobs")
    return url


def time_claims(url: str, claims: int) -> float:
    with psycopg.connect(url) as c:
        start = time.perf_counter()
        for _ in range(claims):
            c.execute("SELECT id FROM app_private.claim_job('bench', 30)").fetchone()
        elapsed = time.perf_counter() - start
        c.rollback()
    return elapsed / claims * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=200)
    ap.add_argument("--jobs-per-tenant", type=int, default=250)
    ap.add_argument("--claims", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    before = build("cf_bench_claim_0013", 13, a.tenants, a.jobs_per_tenant)
    after = build("cf_bench_claim_0014", 14, a.tenants, a.jobs_per_tenant)
    times: dict[str, list[float]] = {"0013": [], "0014": []}
    for _ in range(a.rounds):
        times["0013"].append(time_claims(before, a.claims))
        times["0014"].append(time_claims(after, a.claims))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.node()} {os.cpu_count()} cpus; backlog {a.tenants} tenants x {a.jobs_per_tenant} jobs; "
          f"{a.claims} claims per round, {a.rounds} rounds, interleaved")
    for k, v in times.items():
        print(f"  {k}: median {med[k]:.3f} ms/claim  (rounds: {', '.join(f'{x:.3f}' for x in v)})")
    print(f"  ratio 0014/0013: {med['0014'] / med['0013']:.2f}")
    for name in ("cf_bench_claim_0013", "cf_bench_claim_0014"):
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
