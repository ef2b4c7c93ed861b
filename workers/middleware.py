"""Dramatiq middleware of the workers.

:class:`ClearLogContext` clears structlog's context before and after every nudge, so nothing leaks
from one job to the next on a worker thread.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog


class ClearLogContext(dramatiq.Middleware):
    """Start and end every message with an empty structlog context."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        structlog.contextvars.clear_contextvars()

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        structlog.contextvars.clear_contextvars()
