"""Registry of the CLI subcommands beyond `db`.

Each entry is a function that adds one subcommand to the `contentforge` parser; the modules that
define them import their heavy dependencies (Dramatiq, APScheduler, ffmpeg) only when run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REGISTRARS: list[Callable[[Any], None]] = []

# The job queue: `worker`, `jobs`, `enqueue` (the worker handler imports workers lazily).
from cli.jobs import REGISTRARS as _JOB_QUEUE_COMMANDS  # noqa: E402

REGISTRARS.extend(_JOB_QUEUE_COMMANDS)


def _scheduler(sub: Any) -> None:
    from cli.scheduler import register

    register(sub)


REGISTRARS.append(_scheduler)


def _process(sub: Any) -> None:
    from cli.process import register

    register(sub)


REGISTRARS.append(_process)


# Events and webhooks: `webhooks ...`, `events tail`.
from cli.webhooks import REGISTRARS as _WEBHOOK_COMMANDS  # noqa: E402

REGISTRARS.extend(_WEBHOOK_COMMANDS)
