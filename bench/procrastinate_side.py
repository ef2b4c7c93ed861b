"""Procrastinate's side of bench_queue.py; runs in its own venv (procrastinate is not a project
dependency). Prints one JSON object.

    python procrastinate_side.py DSN throughput JOBS PROCESSES CONCURRENCY
    python procrastinate_side.py DSN latency JOBS GAP_SECONDS
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
import time

import procrastinate
import psycopg

DSN = sys.argv[1]
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=DSN))


@app.task(queue="bench", name="noop")
async def noop(n: int) -> None:
    return None


def _work(concurrency: int, wait: bool, delete: str = "successful") -> None:
    with app.open():
        app.run_worker(queues=["bench"], concurrency=concurrency, wait=wait, install_signal_handlers=False,
                       delete_jobs=delete)


def _reset() -> None:
    with psycopg.connect(DSN, autocommit=True) as c:
        c.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    with app.open():
        app.schema_manager.apply_schema()


def _waiting() -> int:
    with psycopg.connect(DSN) as c:
        return c.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')").fetchone()[0]


def throughput(jobs: int, processes: int, concurrency: int) -> dict:
    """Like ours: workers already up and idle, all jobs queued in one statement, timed from its
    commit until none is waiting or running (Procrastinate deletes succeeded jobs)."""
    _reset()
    procs = [multiprocessing.Process(target=_work, args=(concurrency, True)) for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # processes up and listening
    with app.open():
        noop.batch_defer(*[{"n": i} for i in range(jobs)])
    started = time.perf_counter()
    while _waiting():
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    for p in procs:
        p.terminate()
    for p in procs:
        p.join()
    with psycopg.connect(DSN) as c:
        left = c.execute("SELECT count(*) FROM procrastinate_jobs WHERE status <> 'succeeded'").fetchone()[0]
    return {"jobs": jobs, "seconds": elapsed, "jobs_per_s": jobs / elapsed, "not_succeeded": left}


def latency(jobs: int, gap: float) -> dict:
    _reset()
    proc = multiprocessing.Process(target=_work, args=(1, True, "never"))
    proc.start()
    time.sleep(2)
    with app.open():
        for i in range(jobs):
            noop.defer(n=i)
            time.sleep(gap)
    time.sleep(1)
    proc.terminate()
    proc.join()
    with psycopg.connect(DSN) as c:
        rows = c.execute("""
            SELECT extract(epoch FROM s.at - d.at) * 1000 FROM procrastinate_events d
            JOIN procrastinate_events s ON s.job_id = d.job_id AND s.type = 'started'
            WHERE d.type = 'deferred'""").fetchall()
    ms = sorted(float(r[0]) for r in rows)
    return {"samples": len(ms), "p50_ms": statistics.median(ms), "p99_ms": ms[int(len(ms) * 0.99) - 1]}


if __name__ == "__main__":
    mode = sys.argv[2]
    if mode == "throughput":
        print(json.dumps(throughput(int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
    else:
        print(json.dumps(latency(int(sys.argv[3]), float(sys.argv[4]))))
