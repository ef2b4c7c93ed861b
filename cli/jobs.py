"""Operators' commands for the job queue: `contentforge enqueue`, `contentforge jobs ...` and
`contentforge worker`.

`enqueue` and `jobs` go through :mod:`contentforge.api` (the same SQL functions as any caller);
`worker` imports :mod:`workers` only when it runs, so the rest of the CLI never loads Dramatiq.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import psycopg

from cli import fleet
from cli.arguments import db_error, uuid_arg
from contentforge import api
from contentforge.errors import ConfigurationError, ContentforgeError
from contentforge.services import database
from contentforge.settings import Settings

STATUSES = ("pending", "running", "completed", "failed", "cancelled")


class JobNotFound(ContentforgeError):
    exit_code = 1




# --- enqueue -----------------------------------------------------------------------------------
def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"--params is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigurationError("--params must be a JSON object")
    with database(settings) as url:
        try:
            job_id = api.enqueue(url, args.asset_id, args.job_type, params, priority=args.priority,
                                 idempotency_key=args.idempotency_key)
        except psycopg.Error as exc:
            raise db_error(exc) from exc
    print(job_id)
    return 0


# --- jobs --------------------------------------------------------------------------------------
def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, default=str))


def cmd_jobs_list(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as url:
        rows = api.list_jobs(url, tenant_id=args.tenant, status=args.status, job_type=args.type,
                             limit=args.limit)
    if args.json:
        print(json.dumps([_jsonable(r) for r in rows], indent=2))
        return 0
    print(f"{'ID':36}  {'TYPE':10}  {'STATUS':9}  {'PRI':>3}  {'TRY':>5}  {'PROG':>4}  CREATED / ERROR")
    for r in rows:
        tail = r["error_message"] or r["created_at"].isoformat(timespec="seconds")
        print(f"{r['id']!s:36}  {r['job_type']:10}  {r['status']:9}  {r['priority']:>3}  "
              f"{r['attempts']:>2}/{r['max_attempts']:<2}  {r['progress']:>3}%  {tail}")
    print(f"{len(rows)} job(s)", file=sys.stderr)
    return 0


def cmd_jobs_show(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings) as url:
        row = api.get_job(url, args.job_id)
    if row is None:
        raise JobNotFound(f"job {args.job_id} does not exist")
    row = _jsonable(row)
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        for key, value in row.items():
            shown = json.dumps(value) if isinstance(value, (dict, list)) else value
            print(f"{key:17} {shown}")
    return 0


def _change(args: argparse.Namespace, settings: Settings, verb: str) -> int:
    fn = api.retry if verb == "retry" else api.cancel
    with database(settings) as url:
        try:
            changed = fn(url, args.job_id)
        except psycopg.Error as exc:
            raise db_error(exc) from exc
    state = {"retry": ("queued again", "not failed or cancelled: nothing to retry"),
             "cancel": ("cancelled", "already finished: nothing to cancel")}[verb]
    if args.json:
        print(json.dumps({"job_id": str(args.job_id), "changed": changed}))
    else:
        print(f"job {args.job_id}: {state[0] if changed else state[1]}")
    return 0 if changed else 1


def cmd_jobs_retry(args: argparse.Namespace, settings: Settings) -> int:
    return _change(args, settings, "retry")


def cmd_jobs_cancel(args: argparse.Namespace, settings: Settings) -> int:
    return _change(args, settings, "cancel")


# --- worker ------------------------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    updates: dict[str, Any] = {}
    if args.processes is not None:
        updates["worker_processes"] = args.processes
    if args.threads is not None:
        updates["worker_threads"] = args.threads
    if args.queue is not None:
        updates["queue_name"] = args.queue
    if args.pool is not None or args.job_types is not None:
        # One of them on the command line replaces both from the environment.
        updates["worker_pool"] = args.pool
        updates["worker_job_types"] = args.job_types
    if args.type_concurrency is not None:
        updates["worker_type_concurrency"] = args.type_concurrency
    from workers.supervisor import run  # only this command loads Dramatiq

    return run(settings.model_copy(update=updates))


# --- registrars --------------------------------------------------------------------------------
def register_enqueue(sub: Any) -> None:
    p = sub.add_parser("enqueue", help="queue a job for an asset; prints the job id",
                       description="Queue one job through enqueue_asset_job (the same rules as SQL "
                       "callers: job type must fit the asset's file type).")
    p.add_argument("asset_id", type=uuid_arg, metavar="ASSET_ID")
    p.add_argument("job_type", metavar="JOB_TYPE", help="metadata, thumbnail, transcode, transcript, optimize, noop")
    p.add_argument("--params", default="{}", help="job parameters as a JSON object (default {})")
    p.add_argument("--priority", type=int, default=None,
                   help="fleet-wide priority, 1 (lowest) to 10 (highest); default: the job type's")
    p.add_argument("--idempotency-key", help="the same key returns the same job instead of a new one")
    p.set_defaults(handler=cmd_enqueue)


def register_jobs(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="list, show, retry and cancel jobs; stats, pause, resume, tenant caps",
                          description="Operators' view of the job queue.")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    p = jsub.add_parser("list", help="newest jobs first, with filters")
    p.add_argument("--tenant", type=uuid_arg, help="only this tenant's jobs")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--type", help="only this job type")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_jobs_list)
    for name, handler, text in (
        ("show", cmd_jobs_show, "everything about one job"),
        ("retry", cmd_jobs_retry, "queue a failed or cancelled job again (exit 1 if it was neither)"),
        ("cancel", cmd_jobs_cancel, "cancel a pending or running job (exit 1 if it had finished)"),
    ):
        p = jsub.add_parser(name, help=text)
        p.add_argument("job_id", type=uuid_arg, metavar="JOB_ID")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(handler=handler)
    fleet.register(jsub)


def register_worker(sub: Any) -> None:
    p = sub.add_parser("worker", help="run Dramatiq workers and the relay for the job queue",
                       description="Start worker processes that claim and run queued jobs, plus the "
                       "relay that turns pending rows into nudges. SIGTERM drains gracefully.")
    p.add_argument("--processes", type=int, help="worker processes (default: CPU count, "
                   "CONTENTFORGE_WORKER_PROCESSES)")
    p.add_argument("--threads", type=int, help="threads per process (default 2, CONTENTFORGE_WORKER_THREADS)")
    p.add_argument("--queue", help="Dramatiq queue name (default contentforge, CONTENTFORGE_QUEUE_NAME)")
    pool = p.add_mutually_exclusive_group()
    pool.add_argument("--pool", help="serve a named pool: light (metadata, thumbnail, optimize), heavy (transcode, "
                      "transcript) or one of CONTENTFORGE_WORKER_POOLS (default: every job type; "
                      "CONTENTFORGE_WORKER_POOL)")
    pool.add_argument("--job-types", help="serve only these job types, comma-separated "
                      "(CONTENTFORGE_WORKER_JOB_TYPES)")
    p.add_argument("--type-concurrency", help="per process, the most jobs of a type at once, e.g. "
                   "transcode=1,transcript=1 (CONTENTFORGE_WORKER_TYPE_CONCURRENCY)")
    p.set_defaults(handler=cmd_worker)


REGISTRARS = [register_worker, register_jobs, register_enqueue]
