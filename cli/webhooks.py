"""Operators' commands for events and webhooks: `contentforge webhooks ...` and
`contentforge events tail`.

The endpoint commands call the same SQL functions as tenant admins do through PostgREST (an
operator's direct login may manage every tenant's endpoints). `webhooks dispatch` runs a
dispatcher (:mod:`workers.webhook_dispatcher`); several may run at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from datetime import datetime
from typing import Any

import psycopg

from cli.arguments import db_error, uuid_arg
from contentforge.db import connect
from contentforge.errors import ContentforgeError
from contentforge.services import database
from contentforge.settings import Settings
from schema.named_queries import queries

EVENT_TYPES = ("job.completed", "job.failed", "asset.processing_started", "asset.metadata_available",
               "asset.ready", "asset.failed")



def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None



def _run(settings: Settings, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with database(settings) as url, connect(url, autocommit=True) as conn:
        try:
            return conn.execute(queries("webhooks")[name], params).fetchall()
        except psycopg.Error as exc:
            raise db_error(exc) from exc


def _print(rows: Any) -> None:
    print(json.dumps(rows, indent=2, default=str))


# --- endpoints ---------------------------------------------------------------------------------
def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    row = _run(settings, "create_endpoint", {"tenant_id": args.tenant, "url": args.url,
                                             "event_types": args.event or [], "description": args.description})[0]
    if args.json:
        _print(row)
    else:
        print(f"endpoint {row['endpoint_id']}\nsecret   {row['secret']}")
        print("The secret is shown this once: store it where the receiver verifies signatures.", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = _run(settings, "list_endpoints", {"tenant_id": args.tenant})
    if args.json:
        _print(rows)
        return 0
    for r in rows:
        state = "enabled" if r["enabled"] else f"DISABLED ({r['disabled_reason'] or 'by request'})"
        failing = f"  failing since {r['failing_since']:%Y-%m-%d %H:%M}" if r["failing_since"] else ""
        types = ",".join(r["event_types"]) or "all events"
        print(f"{r['id']}  tenant {r['tenant_id']}  {r['url']}  [{types}]  {state}{failing}  queued {r['queued']}")
    print(f"{len(rows)} endpoint(s)", file=sys.stderr)
    return 0


def cmd_update(args: argparse.Namespace, settings: Settings) -> int:
    enabled = True if args.enable else False if args.disable else None
    row = _run(settings, "update_endpoint", {"endpoint_id": args.endpoint_id, "url": args.url,
                                             "event_types": args.event, "enabled": enabled,
                                             "description": args.description})[0]
    print(f"endpoint {args.endpoint_id}: {'updated' if row['updated'] else 'unchanged'}")
    return 0


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    row = _run(settings, "rotate_secret", {"endpoint_id": args.endpoint_id, "overlap_seconds": args.overlap_seconds})[0]
    print(row["secret"])
    print(f"New secret shown this once; the previous one keeps signing for {args.overlap_seconds} s.", file=sys.stderr)
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    _run(settings, "delete_endpoint", {"endpoint_id": args.endpoint_id})
    print(f"endpoint {args.endpoint_id} removed")
    return 0


def cmd_deliveries(args: argparse.Namespace, settings: Settings) -> int:
    rows = _run(settings, "list_deliveries", {"endpoint_id": args.endpoint, "event_id": args.event,
                                              "limit": args.limit})
    if args.json:
        _print(rows)
        return 0
    for r in rows:
        code = r["last_status_code"] if r["last_status_code"] is not None else "-"
        print(f"{r['event_id']}  {r['event_type']:25}  {r['status']:10}  try {r['attempts']:>2}  "
              f"HTTP {code!s:>3}  {r['last_latency_ms'] or 0:>5} ms  {r['last_error'] or ''}")
    print(f"{len(rows)} deliver(y/ies)", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.event is None and (args.endpoint is None or args.since is None):
        raise ContentforgeError("name --event, or --endpoint with --since")
    row = _run(settings, "replay", {"endpoint_id": args.endpoint, "event_id": args.event,
                                    "since": args.since, "until": args.until})[0]
    print(f"{row['queued']} deliver(y/ies) queued again")
    return 0


def cmd_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from contentforge.signals import stop_on_signals
    from workers.webhook_dispatcher import Dispatcher

    stop = threading.Event() if args.once else stop_on_signals()
    with database(settings) as db_url:
        # LISTEN for new deliveries needs a session: DATABASE_SESSION_URL when set; a transaction
        # pooler is refused with the fix named (contentforge.pooler).
        url = _session_url(settings, db_url, "`contentforge webhooks dispatch`")
        dispatcher = Dispatcher(settings, url)
        try:
            if args.once:
                print(f"{dispatcher.run_once()} deliver(y/ies) attempted", file=sys.stderr)
            else:
                dispatcher.run(stop)
        finally:
            dispatcher.close()
    return 0


def _session_url(settings: Settings, db_url: str, process: str) -> str:
    """The URL to LISTEN on, checked to keep a session (exit 2 naming the fix behind a transaction pooler)."""
    from contentforge.pooler import require_session
    from contentforge.services import session_database

    url, setting = session_database(settings, db_url)
    require_session(url, process=process, needs="LISTEN for new events", setting=setting)
    return url


# --- events ------------------------------------------------------------------------------------
def cmd_events_tail(args: argparse.Namespace, settings: Settings) -> int:
    from contentforge.signals import stop_on_signals

    stop = stop_on_signals()
    q = queries("webhooks")
    with database(settings) as db_url, \
            connect(_session_url(settings, db_url, "`contentforge events tail`"), autocommit=True) as conn:
        conn.execute(q["listen_events"])
        print("listening on contentforge_events", file=sys.stderr)
        while not stop.is_set():
            # Collect first: the connection cannot run a query while it waits for notifications.
            ids = [n.payload for n in conn.notifies(timeout=0.5) if n.payload]  # '' = a replay's wake-up
            for event_id in ids:
                row = conn.execute(q["event_body"], {"event_id": event_id}).fetchone()
                if row is None or (args.tenant and row["tenant_id"] != args.tenant):
                    continue
                print(row["body"], flush=True)
    return 0


# --- registrars --------------------------------------------------------------------------------
def register_webhooks(sub: Any) -> None:
    w = sub.add_parser("webhooks", help="manage webhook endpoints, deliveries and the dispatcher",
                       description="Signed webhooks (Standard Webhooks) to the tenants' endpoints.")
    ws = w.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")

    p = ws.add_parser("dispatch", help="run a dispatcher (safe to run several)",
                      description="Post due deliveries until SIGTERM; --once posts one batch and exits.")
    p.add_argument("--once", action="store_true", help="one batch, then exit")
    p.set_defaults(handler=cmd_dispatch)

    p = ws.add_parser("add", help="register an endpoint; prints its id and its secret (once)")
    p.add_argument("--tenant", type=uuid_arg, required=True)
    p.add_argument("--url", required=True, help="https://… (http only where the operator allows it)")
    p.add_argument("--event", action="append", choices=EVENT_TYPES, help="an event type (repeat); default all")
    p.add_argument("--description", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_add)

    p = ws.add_parser("list", help="endpoints with their health (disabled ones first)")
    p.add_argument("--tenant", type=uuid_arg)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = ws.add_parser("update", help="change an endpoint's URL, events or state")
    p.add_argument("endpoint_id", type=uuid_arg, metavar="ENDPOINT_ID")
    p.add_argument("--url")
    p.add_argument("--event", action="append", choices=EVENT_TYPES)
    p.add_argument("--description")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--enable", action="store_true", help="enable (clears a disablement after failures)")
    state.add_argument("--disable", action="store_true")
    p.set_defaults(handler=cmd_update)

    p = ws.add_parser("rotate", help="new secret; the old one keeps signing during the overlap")
    p.add_argument("endpoint_id", type=uuid_arg, metavar="ENDPOINT_ID")
    p.add_argument("--overlap-seconds", type=int, default=86400)
    p.set_defaults(handler=cmd_rotate)

    p = ws.add_parser("remove", help="delete an endpoint and its deliveries")
    p.add_argument("endpoint_id", type=uuid_arg, metavar="ENDPOINT_ID")
    p.set_defaults(handler=cmd_remove)

    p = ws.add_parser("deliveries", help="the delivery log, newest first")
    p.add_argument("--endpoint", type=uuid_arg)
    p.add_argument("--event", type=uuid_arg)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_deliveries)

    p = ws.add_parser("replay", help="send one event, or an endpoint's events in a time range, again")
    p.add_argument("--event", type=uuid_arg)
    p.add_argument("--endpoint", type=uuid_arg)
    p.add_argument("--since", type=_time, help="ISO 8601 time (with --endpoint)")
    p.add_argument("--until", type=_time, help="ISO 8601 time, exclusive (default: now)")
    p.set_defaults(handler=cmd_replay)


def register_events(sub: Any) -> None:
    e = sub.add_parser("events", help="follow the event stream",
                       description="Events as they are committed (LISTEN contentforge_events).")
    es = e.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    p = es.add_parser("tail", help="print each new event as one JSON line until interrupted")
    p.add_argument("--tenant", type=uuid_arg, help="only this tenant's events")
    p.set_defaults(handler=cmd_events_tail)


REGISTRARS = [register_webhooks, register_events]
