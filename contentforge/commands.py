"""Registry of the CLI subcommands beyond `db`.

Each entry is a function that adds one subcommand to the `contentforge` parser; the modules that
define them import their heavy dependencies (Dramatiq, APScheduler, ffmpeg) only when run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REGISTRARS: list[Callable[[Any], None]] = []
