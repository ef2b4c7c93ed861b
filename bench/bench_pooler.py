"""The cost of running without server-side prepared statements, on a direct connection.

    .venv/bin/python bench/bench_pooler.py --calls 2000 --rounds 6

contentforge opens every connection with ``prepare_threshold=None`` and the API passes
``prepare=False``, so that a transaction pooler works. This measures what that costs where prepared
statements would have worked: a direct connection to the PostgreSQL of TEST_DATABASE_URL (default
postgres@127.0.0.1), in a fresh database. Each round runs, on two connections kept open for the
whole session, the same three hot calls CALLS times each: ``enqueue`` (the Python API's query),
``claim`` and ``complete_and_claim`` (a worker's per-job round trips), once with psycopg's default
(prepared from the fifth run) and once unprepared, the order alternating between rounds. Reported:
the median per-call wall time of each round, the PostgreSQL backend's CPU time per call (from
/proc: steadier than wall time on a shared machine), and the medians over rounds with ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from common import conninfo, sh
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from schema.named_queries import queries

ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MODES = ("prepared", "unprepared")
CALLS = ("enqueue", "claim", "complete_and_claim")


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Session:
    """One connection in one mode, and the calls a producer and a worker make on it."""

    def __init__(self, url: str, mode: str, assets: list[uuid.UUID]) -> None:
        prepare = {} if mode == "prepared" else {"prepare_threshold": None}
        self.conn = psycopg.connect(url, autocommit=True, row_factory=dict_row, **prepare)
        self.mode = mode
        self.pid = self.conn.execute("SELECT pg_backend_pid() AS p").fetchone()["p"]
        self.assets = assets
        self.worker = f"bench-{mode}"
        self.q = queries("queue")
        self.seq = 0

    def enqueue(self) -> Any:
        self.seq += 1
        return self.conn.execute(self.q["enqueue"], {
            "asset_id": self.assets[self.seq % len(self.assets)], "job_type": "noop",
            "params": Jsonb({"tag": f"{self.mode}-{self.seq}"}), "priority": 5, "run_after": None,
            "idempotency_key": None}).fetchone()

    def claim(self) -> Any:
        return self.conn.execute(self.q["claim"], {"worker_id": self.worker, "lease_seconds": 60}).fetchone()

    def complete(self, job_id: uuid.UUID) -> Any:
        return self.conn.execute(self.q["complete_and_claim"], {
            "job_id": job_id, "worker_id": self.worker, "output": Jsonb({}), "lease_seconds": 60,
            "claim_next": False}).fetchone()

    def block(self, calls: int) -> dict[str, tuple[float, float]]:
        """(median wall ms, backend CPU ms) per call of each kind, for ``calls`` jobs."""
        out: dict[str, tuple[float, float]] = {}
        wall: list[float] = []
        cpu0 = _backend_cpu(self.pid)
        for _ in range(calls):
            t = time.perf_counter()
            self.enqueue()
            wall.append(time.perf_counter() - t)
        out["enqueue"] = (statistics.median(wall) * 1e3, (_backend_cpu(self.pid) - cpu0) * 1e3 / calls)
        claimed: list[uuid.UUID] = []
        wall, cpu0 = [], _backend_cpu(self.pid)
        for _ in range(calls):
            t = time.perf_counter()
            row = self.claim()
            wall.append(time.perf_counter() - t)
            claimed.append(row["id"])
        out["claim"] = (statistics.median(wall) * 1e3, (_backend_cpu(self.pid) - cpu0) * 1e3 / calls)
        wall, cpu0 = [], _backend_cpu(self.pid)
        for job_id in claimed:
            t = time.perf_counter()
            row = self.complete(job_id)
            wall.append(time.perf_counter() - t)
            assert row["ours"], "a claimed job must be ours to complete"
        out["complete_and_claim"] = (statistics.median(wall) * 1e3, (_backend_cpu(self.pid) - cpu0) * 1e3 / calls)
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000, help="jobs per block (each enqueued, claimed, completed)")
    ap.add_argument("--rounds", type=int, default=6, help="rounds, each one block per mode, order alternating")
    ap.add_argument("--db", default="cf_bench_pooler")
    args = ap.parse_args()

    from schema import migrate

    url = conninfo(ADMIN, dbname=args.db)
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.db)))
    try:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("UPDATE app_private.job_types SET enabled = true WHERE test_only")  # noop is test-only
            tenant = c.execute("INSERT INTO tenants (name, slug) VALUES ('bench', 'bench') RETURNING id").fetchone()[0]
            assets = [r[0] for r in c.execute(
                """INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path)
                   SELECT %(t)s, 'f.bin', 'other', 'application/octet-stream', 1, %(t)s::text || '/k/' || g
                   FROM generate_series(1, 1000) g RETURNING id""", {"t": tenant})]
        sessions = {m: Session(url, m, assets) for m in MODES}
        for s in sessions.values():  # warm up: caches, the prepared statements of the prepared mode
            s.block(50)
        results: dict[str, list[dict[str, tuple[float, float]]]] = {m: [] for m in MODES}
        for r in range(args.rounds):
            order = MODES if r % 2 == 0 else MODES[::-1]
            for m in order:
                results[m].append(sessions[m].block(args.calls))
            print(f"round {r + 1}: " + "; ".join(
                f"{m} " + ", ".join(f"{k} {results[m][-1][k][0]:.3f} ms / {results[m][-1][k][1]:.3f} ms CPU"
                                    for k in CALLS) for m in MODES), flush=True)
        for s in sessions.values():
            s.conn.close()
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db)))

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"\nmachine: {platform.machine()}, {sh('nproc')} CPUs, load {load}, "
          f"Python {platform.python_version()}, psycopg {psycopg.__version__}, {args.rounds} rounds x {args.calls} calls")
    print("| call | prepared: wall ms (median of rounds) | unprepared: wall ms | ratio | prepared: backend CPU ms | "
          "unprepared: backend CPU ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for k in CALLS:
        w = {m: statistics.median(x[k][0] for x in results[m]) for m in MODES}
        c = {m: statistics.median(x[k][1] for x in results[m]) for m in MODES}
        print(f"| {k} | {w['prepared']:.3f} | {w['unprepared']:.3f} | {w['unprepared'] / w['prepared']:.2f} | "
              f"{c['prepared']:.3f} | {c['unprepared']:.3f} | {c['unprepared'] / c['prepared']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
