"""Operators shape the fleet: `contentforge jobs stats|pause|resume|paused|limit|limits`.

Each command calls one operator-only SQL function or query of ``schema/queries/queue.sql`` (the
functions of migration 0019 in ``app_private``, which no API role can reach); none loads Dramatiq.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import psycopg
from psycopg.rows import dict_row

from cli.arguments import db_error, uuid_arg
from contentforge.db import connect
from contentforge.errors import ConfigurationError
from contentforge.services import database
from contentforge.settings import Settings
from schema.named_queries import queries

#: A pool whose supervisor has not reported for this long is not running (workers.pools.POOL_STALE_SECONDS;
#: repeated here so that these commands need no worker extra; a test keeps them equal).
POOL_STALE_SECONDS = 20.0


def _rows(settings: Settings, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with database(settings) as url, connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        try:
            cur.execute(queries("queue")[name], params, prepare=False)
        except psycopg.Error as exc:
            raise db_error(exc) from exc
        return cur.fetchall() if cur.description else []


def _print_json(rows: Any) -> None:
    print(json.dumps(rows, indent=2, default=str))


def _age(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


# --- stats ---------------------------------------------------------------------------------------
def cmd_jobs_stats(args: argparse.Namespace, settings: Settings) -> int:
    rows = _rows(settings, "job_type_stats", {"stale_seconds": POOL_STALE_SECONDS})
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'TYPE':11} {'READY':>7} {'PAUSED':>7} {'RUNNING':>7} {'OLDEST':>7}  {'TYPE PAUSED':11}  SERVED BY")
    for r in rows:
        served = ", ".join(r["pools"]) or "NO RUNNING POOL"
        print(f"{r['job_type']:11} {r['ready']:>7} {r['paused_ready']:>7} {r['running']:>7} "
              f"{_age(r['oldest_ready_seconds']):>7}  {'yes' if r['paused'] else 'no':11}  {served}")
    unserved = [r["job_type"] for r in rows if not r["pools"] and r["ready"]]
    if unserved:
        print(f"warning: ready jobs that no running pool serves: {', '.join(unserved)}", file=sys.stderr)
    return 0


# --- pause / resume ------------------------------------------------------------------------------
def _scope(args: argparse.Namespace) -> dict[str, Any]:
    if args.job_type is None and args.tenant is None:
        raise ConfigurationError(f"{args.jobs_command}: name --job-type, --tenant, or both")
    return {"job_type": args.job_type, "tenant_id": args.tenant}


def _scope_text(scope: dict[str, Any]) -> str:
    parts = []
    if scope["job_type"]:
        parts.append(f"job type {scope['job_type']}")
    if scope["tenant_id"]:
        parts.append(f"tenant {scope['tenant_id']}")
    return " of ".join(parts)


def cmd_jobs_pause(args: argparse.Namespace, settings: Settings) -> int:
    scope = _scope(args)
    changed = _rows(settings, "pause_jobs", {**scope, "reason": args.reason})[0]["changed"]
    if args.json:
        _print_json({**scope, "changed": changed})
    else:
        print(f"{_scope_text(scope)}: {'paused' if changed else 'already paused'} "
              "(pending jobs stay pending; running jobs finish)")
    return 0


def cmd_jobs_resume(args: argparse.Namespace, settings: Settings) -> int:
    scope = _scope(args)
    changed = _rows(settings, "resume_jobs", scope)[0]["changed"]
    if args.json:
        _print_json({**scope, "changed": changed})
    else:
        print(f"{_scope_text(scope)}: {'resumed' if changed else 'was not paused'}")
    return 0 if changed else 1


def cmd_jobs_paused(args: argparse.Namespace, settings: Settings) -> int:
    rows = _rows(settings, "list_pauses", {})
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'JOB TYPE':11} {'TENANT':36} {'PENDING':>7}  {'SINCE':20} {'BY':12} REASON")
    for r in rows:
        print(f"{r['job_type'] or '(all)':11} {r['tenant_id'] or '(all)'!s:36} {r['pending']:>7}  "
              f"{r['paused_at'].isoformat(timespec='seconds')[:19]:20} {r['paused_by']:12} {r['reason'] or ''}")
    print(f"{len(rows)} pause(s)", file=sys.stderr)
    return 0


# --- tenant caps ---------------------------------------------------------------------------------
def cmd_jobs_limit(args: argparse.Namespace, settings: Settings) -> int:
    if (args.max_running is None) == (not args.clear):
        raise ConfigurationError("limit: give --max-running N or --clear")
    _rows(settings, "set_tenant_job_limit", {"tenant_id": args.tenant, "max_running": args.max_running})
    if args.json:
        _print_json({"tenant_id": str(args.tenant), "max_running": args.max_running})
    elif args.clear:
        print(f"tenant {args.tenant}: no cap on running jobs")
    else:
        print(f"tenant {args.tenant}: at most {args.max_running} running job(s) across the fleet")
    return 0


def cmd_jobs_limits(args: argparse.Namespace, settings: Settings) -> int:
    rows = _rows(settings, "list_tenant_job_limits", {})
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'TENANT':36} {'MAX':>5} {'RUNNING':>7}  SET")
    for r in rows:
        print(f"{r['tenant_id']!s:36} {r['max_running']:>5} {r['running']:>7}  "
              f"{r['updated_at'].isoformat(timespec='seconds')[:19]} by {r['updated_by']}")
    return 0


def register(jsub: Any) -> None:
    """Add the fleet commands to the `jobs` subparser."""
    p = jsub.add_parser("stats", help="per job type: ready, paused, running, oldest ready, pools serving it",
                        description="Per job type: ready jobs (pending, due, not paused), ready but paused, "
                        "running, the oldest ready job's age, whether the type is paused, and the running "
                        "worker pools that serve it (none: those jobs wait until a worker for them starts).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_jobs_stats)
    for name, handler, text in (
        ("pause", cmd_jobs_pause, "pause a job type, a tenant, or one type of one tenant: its jobs stay pending"),
        ("resume", cmd_jobs_resume, "resume what pause paused (the same scope; exit 1 if it was not paused)"),
    ):
        p = jsub.add_parser(name, help=text, description=text + ". Resuming wakes the workers at once.")
        p.add_argument("--job-type", help="a job type (metadata, thumbnail, transcode, ...)")
        p.add_argument("--tenant", type=uuid_arg, help="a tenant id")
        if name == "pause":
            p.add_argument("--reason", help="why (shown by `jobs paused`)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(handler=handler)
    p = jsub.add_parser("paused", help="list what is paused, with the pending jobs each pause holds")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_jobs_paused)
    p = jsub.add_parser("limit", help="cap a tenant's running jobs across the fleet (--clear removes it)",
                        description="At most N of the tenant's jobs run at once across every worker; "
                        "enforced in the claim. Lowering the cap stops nothing that runs.")
    p.add_argument("--tenant", type=uuid_arg, required=True, help="the tenant id")
    p.add_argument("--max-running", type=int, help="the cap, at least 1")
    p.add_argument("--clear", action="store_true", help="remove the tenant's cap")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_jobs_limit)
    p = jsub.add_parser("limits", help="list the tenants' caps and what each runs now")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_jobs_limits)
