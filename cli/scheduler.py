"""`contentforge scheduler`: run the scheduler, run one task now, or list tasks and their last runs."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from contentforge.services import database, session_database
from contentforge.settings import Settings
from contentforge.signals import stop_on_signals

#: What the scheduler keeps in its PostgreSQL session, for the message when it gets none.
SESSION_NEEDS = "the advisory locks that keep one scheduler active and one run of a task at a time"


def _session(settings: Settings, url: str, process: str, stop: threading.Event | None = None) -> str:
    """The session URL for the scheduler; exit with a clear error when it is a transaction pooler.
    With ``stop``, an unreachable database is waited for (the scheduler rides out outages)."""
    from contentforge.pooler import require_session

    session, setting = session_database(settings, url)
    require_session(session, process=process, needs=SESSION_NEEDS, setting=setting, stop=stop)
    return session


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from scheduler.service import SchedulerService

    stopping = stop_on_signals()  # before the embedded PostgreSQL starts
    with database(settings) as url:
        if not stopping.is_set():
            session = _session(settings, url, "`contentforge scheduler`", stopping)
            SchedulerService(session, settings, stopping=stopping).serve()
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from scheduler.runner import run_task

    with database(settings) as url:
        session = _session(settings, url, f"`contentforge scheduler run {args.task}`")
        out = run_task(session, settings, args.task, trigger="manual")
    summary = {"task": out.task, "outcome": out.outcome, "rows": out.rows, "seconds": round(out.seconds, 3),
               "details": out.details, "error": out.error, "reason": out.reason}
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        line = f"{out.task}: {out.outcome}"
        if out.outcome == "succeeded":
            line += f", {out.rows} row(s) in {out.seconds:.2f} s  {json.dumps(out.details, default=str)}"
        elif out.outcome == "failed":
            line += f": {out.error}"
        else:
            line += f" ({out.reason})"
        print(line)
    # 0 done; 1 the task failed; 75 (EX_TEMPFAIL) another run holds the task: try again later.
    return {"succeeded": 0, "failed": 1}.get(out.outcome, 75)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from scheduler.runner import last_runs
    from scheduler.tasks import TASKS

    with database(settings) as url:
        runs = last_runs(url)
    rows = []
    for name, task in TASKS.items():
        r = runs.get(name, {})
        rows.append({"task": name, "schedule": task.schedule(settings), "last_started": r.get("started_at"),
                     "last_outcome": r.get("outcome"), "last_rows": r.get("rows_affected"),
                     "last_error": r.get("error")})
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
    else:
        print(f"{'TASK':<11} {'SCHEDULE':<14} {'LAST RUN (UTC)':<20} {'OUTCOME':<10} ROWS")
        for r in rows:
            started = r["last_started"].strftime("%Y-%m-%d %H:%M:%S") if r["last_started"] else "never"
            print(f"{r['task']:<11} {r['schedule']:<14} {started:<20} {r['last_outcome'] or '-':<10} "
                  f"{'' if r['last_rows'] is None else r['last_rows']}")
    return 0


def register(sub: Any) -> None:
    from scheduler.tasks import TASKS

    p = sub.add_parser("scheduler", help="run the periodic tasks (publishing, partitions, analytics, cleanup)",
                       description="Without an action, run the scheduler process: one replica is active at a "
                       "time, others stand by and take over when it dies. Schedules come from "
                       "CONTENTFORGE_SCHEDULE_<TASK> settings.")
    p.set_defaults(handler=cmd_serve)
    ssub = p.add_subparsers(dest="scheduler_command", metavar="ACTION")
    r = ssub.add_parser("run", help="run one task now and print its summary",
                        description="Run one task now, under the same once-at-a-time guard as the scheduler. "
                        "Exit 0 when it succeeded, 1 when it failed, 75 when another run holds the task.")
    r.add_argument("task", choices=sorted(TASKS))
    r.add_argument("--json", action="store_true", help="machine-readable summary")
    r.set_defaults(handler=cmd_run)
    ls = ssub.add_parser("list", help="each task, its schedule, its last run and outcome")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=cmd_list)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: contentforge scheduler")
