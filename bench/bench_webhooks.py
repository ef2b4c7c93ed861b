"""Webhook delivery: throughput to a local receiver, and latency from job completion to receipt.

Run by hand: ``.venv/bin/python bench/bench_webhooks.py [--events 2000] [--threads 8] [--rounds 3]
[--latency-jobs 100]``. PostgreSQL at TEST_DATABASE_URL (default the local server); a fresh database
is created and dropped.

- Throughput: N events committed in one transaction to a tenant with one endpoint; a real
  `contentforge webhooks dispatch` process (threads = --threads) posts them to a loopback receiver
  (ThreadingHTTPServer) that checks each signature with the `standardwebhooks` package; timed
  from the commit to the N-th verified receipt. Baseline, interleaved round by round: the same
  bodies, signed the same way, posted by --threads plain http.client threads with no database
  (the cost of HTTP alone on this machine).
- Latency: with the dispatcher idle and listening, a job is claimed and completed through the
  queue's SQL functions; timed from the completion's commit to the receiver reading the
  job.completed event (both clocks: this process's time.monotonic). Baseline: the same commit to
  a LISTENing connection in this process waking (PostgreSQL's NOTIFY alone).
- Outbox cost (--outbox-jobs N): the queue's hot path, each job on its own asset queued, claimed
  and completed through the SQL functions from one connection, with the outbox triggers enabled
  (events, and deliveries for one endpoint) and disabled, alternating in blocks of 50, same
  database: the extra time per job that the outbox adds to the workers' transactions.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from common import conninfo, sh
from psycopg import sql
from standardwebhooks.webhooks import Webhook

REPO = Path(__file__).resolve().parents[1]
ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class Receiver:
    def __init__(self) -> None:
        self.secret = ""
        self.lock = threading.Lock()
        self.arrivals: dict[str, float] = {}
        self.bad = 0
        self.count = 0
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                now = time.monotonic()
                try:
                    event = Webhook(rec.secret).verify(body, dict(self.headers.items()))
                    ok = True
                except Exception:
                    event, ok = json.loads(body), False
                with rec.lock:
                    rec.count += 1
                    rec.bad += 0 if ok else 1
                    key = str(event.get("data", {}).get("job_id") or event["id"])
                    rec.arrivals.setdefault(key, now)
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            # The default listen backlog (5) overflows under 8 concurrent connects: the kernel drops
            # SYNs and the client retransmits after a second, which measures the receiver, not us.
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_count(self, n: int, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self.count >= n:
                    return time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.count} of {n} deliveries arrived")
            time.sleep(0.002)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-jobs", type=int, default=100)
    ap.add_argument("--outbox-jobs", type=int, default=0)
    args = ap.parse_args()

    from schema import migrate
    from workers.webhook_signature import signed_headers

    name = f"bench_wh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as a:
        a.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = conninfo(ADMIN, dbname=name)
    proc = None
    try:
        migrate(url)
        conn = psycopg.connect(url, autocommit=True)
        conn.execute("UPDATE app_private.job_types SET enabled = true WHERE test_only")  # noop is test-only
        tenant = conn.execute("INSERT INTO tenants (name, slug) VALUES ('B', 'b') RETURNING id").fetchone()[0]
        asset = conn.execute("""INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path)
                                VALUES (%s, 'x.png', 'image', 'image/png', 1, %s::text || '/p') RETURNING id""", (tenant, tenant)).fetchone()[0]
        rec = Receiver()
        endpoint, rec.secret = conn.execute("SELECT * FROM create_webhook_endpoint(%s, %s, ARRAY['job.completed'])",
                                            (tenant, f"http://127.0.0.1:{rec.port}/hook")).fetchone()
        env = {**os.environ, "DATABASE_URL": url, "CONTENTFORGE_WEBHOOK_ALLOW_HTTP": "true",
               "CONTENTFORGE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
               "CONTENTFORGE_WEBHOOK_DISPATCH_THREADS": str(args.threads), "CONTENTFORGE_LOG_FORMAT": "json"}
        proc = subprocess.Popen([sys.executable, "-m", "cli", "webhooks", "dispatch"], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)  # imports and LISTEN

        # --- latency -------------------------------------------------------------------------
        listener = psycopg.connect(url, autocommit=True)
        listener.execute("LISTEN contentforge_events")
        ours, floor = [], []
        for _ in range(args.latency_jobs):
            job = conn.execute("SELECT enqueue_asset_job(%s, 'noop')", (asset,)).fetchone()[0]
            conn.execute("SELECT app_private.claim_job('bench', 30)")
            list(listener.notifies(timeout=0.05))  # drain the enqueue's notifications
            conn.execute("SELECT app_private.complete_job(%s, 'bench', '{}')", (job,))
            t0 = time.monotonic()
            for _n in listener.notifies(timeout=5, stop_after=1):
                floor.append(time.monotonic() - t0)
            deadline = time.monotonic() + 10
            while str(job) not in rec.arrivals and time.monotonic() < deadline:
                time.sleep(0.0005)
            ours.append(rec.arrivals[str(job)] - t0)
            list(listener.notifies(timeout=0.01))
            time.sleep(random.uniform(0.02, 0.05))
        listener.close()
        q = statistics.quantiles(ours, n=20)
        qf = statistics.quantiles(floor, n=20)
        lat = {"p50_ms": round(statistics.median(ours) * 1000, 1), "p95_ms": round(q[18] * 1000, 1),
               "notify_p50_ms": round(statistics.median(floor) * 1000, 2), "notify_p95_ms": round(qf[18] * 1000, 2),
               "n": len(ours)}

        # --- throughput ----------------------------------------------------------------------
        conn.execute("UPDATE webhook_endpoints SET event_types = '{}' WHERE id = %s", (endpoint,))
        body = json.dumps({"id": "x", "type": "job.completed", "data": {"pad": "p" * 300}}).encode()
        rows = []
        for rnd in range(args.rounds):
            # ours
            start_count = rec.count
            with conn.transaction():
                conn.execute("""INSERT INTO webhook_events (tenant_id, event_type, job_id, data)
                                SELECT %s, 'job.completed', gen_random_uuid(), jsonb_build_object('pad', repeat('p', 300), 'n', g)
                                FROM generate_series(1, %s) g""", (tenant, args.events))
            t0 = time.monotonic()
            t1 = rec.wait_count(start_count + args.events)
            ours_rate = args.events / (t1 - t0)
            # baseline: plain HTTP posts, same thread count, same signing
            start_count = rec.count

            def post_one(i: int) -> None:
                msg = f"msg_{uuid.uuid4().hex}_{i}"
                headers = signed_headers([rec.secret], msg, int(time.time()), body)
                c = http.client.HTTPConnection("127.0.0.1", rec.port, timeout=10)
                c.request("POST", "/hook", body=body, headers=headers)
                c.getresponse().read()
                c.close()

            t0 = time.monotonic()
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(post_one, range(args.events)))
            t1 = rec.wait_count(start_count + args.events)
            base_rate = args.events / (t1 - t0)
            rows.append((ours_rate, base_rate))
            print(f"round {rnd + 1}: ours {ours_rate:.0f}/s, plain HTTP {base_rate:.0f}/s", file=sys.stderr)
        med_ours = statistics.median(r[0] for r in rows)
        med_base = statistics.median(r[1] for r in rows)
        failed = conn.execute("SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded'").fetchone()[0]
        outbox = outbox_cost(conn, tenant, args.outbox_jobs, proc) if args.outbox_jobs else None
        print(json.dumps({
            "machine": {"nproc": sh("nproc"), "load": sh("cat /proc/loadavg"),
                        "pg": conn.execute("SHOW server_version").fetchone()[0]},
            "latency": lat,
            "throughput": {"events": args.events, "threads": args.threads, "rounds": [[round(a), round(b)] for a, b in rows],
                           "ours_median_per_s": round(med_ours), "plain_http_median_per_s": round(med_base),
                           "ratio": round(med_ours / med_base, 2)},
            "outbox_cost": outbox,
            "unverified_deliveries": rec.bad, "deliveries_not_succeeded": failed,
        }, indent=2))
        conn.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        with psycopg.connect(ADMIN, autocommit=True) as a:
            a.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return 0


OUTBOX_TRIGGERS = (("asset_processing_jobs", "jobs_events"), ("assets", "assets_events_insert"),
                   ("assets", "assets_events_update"))


def outbox_cost(conn: psycopg.Connection, tenant: uuid.UUID, jobs: int, dispatcher: subprocess.Popen | None) -> dict:
    """Milliseconds per job (queue, claim, complete) with the outbox triggers on and off, interleaved."""
    if dispatcher is not None:  # measure the database work alone: the deliveries stay queued
        dispatcher.terminate()
        dispatcher.wait(30)
    times: dict[bool, list[float]] = {True: [], False: []}
    block = 50
    for i in range(0, jobs, block):
        on = (i // block) % 2 == 0
        for table, trigger in OUTBOX_TRIGGERS:
            conn.execute(sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
                sql.Identifier(table), sql.SQL("ENABLE" if on else "DISABLE"), sql.Identifier(trigger)))
        for _ in range(min(block, jobs - i)):
            asset = conn.execute("""INSERT INTO assets (tenant_id, original_filename, file_type, mime_type, file_size,
                                    storage_path) VALUES (%s, 'x.png', 'image', 'image/png', 1, %s::text || '/' || gen_random_uuid())
                                    RETURNING id""", (tenant, tenant)).fetchone()[0]
            t0 = time.perf_counter()
            job = conn.execute("SELECT enqueue_asset_job(%s, 'noop')", (asset,)).fetchone()[0]
            conn.execute("SELECT app_private.claim_job('bench', 30)")
            conn.execute("SELECT app_private.complete_job(%s, 'bench', '{}')", (job,))
            times[on].append(time.perf_counter() - t0)
    for table, trigger in OUTBOX_TRIGGERS:
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(sql.Identifier(table), sql.Identifier(trigger)))
    on_ms = statistics.median(times[True]) * 1000
    off_ms = statistics.median(times[False]) * 1000
    return {"jobs_each": len(times[True]), "with_outbox_ms": round(on_ms, 2), "without_ms": round(off_ms, 2),
            "ratio": round(on_ms / off_ms, 2)}


if __name__ == "__main__":
    sys.exit(main())
