"""Procrastinate's side of bench_queue.py; runs in its own venv (procrastinate is not a project
dependency). bench_queue.py queues the jobs and reads the results with SQL; this only installs the
schema and runs workers.

    python procrastinate_side.py schema DSN
    python procrastinate_side.py work DSN PROCESSES CONCURRENCY DELETE_JOBS   (prints "ready"; runs until SIGTERM)

Default mode: LISTEN/NOTIFY with the default polling interval. Tasks: "noop" on queue "bench".
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys

import procrastinate

DSN = sys.argv[2]
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=DSN))


@app.task(queue="bench", name="noop")
async def noop(**_: object) -> None:
    return None


def _work(concurrency: int, delete: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    with app.open():
        app.run_worker(queues=["bench"], concurrency=concurrency, wait=True, delete_jobs=delete)


def main() -> int:
    mode = sys.argv[1]
    if mode == "schema":
        with app.open():
            app.schema_manager.apply_schema()
        return 0
    processes, concurrency, delete = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    procs = [multiprocessing.Process(target=_work, args=(concurrency, delete)) for _ in range(processes)]
    for p in procs:
        p.start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # after the start: children keep theirs
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM})  # no CPU while waiting (counted in the idle figures)
    for p in procs:
        p.terminate()
    for p in procs:
        p.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
