"""Media processing: a source file and options in, files and a frozen result record out.

Nothing here touches the database, the broker or object storage: the workers download the original
to a temporary directory, call :func:`run_job`, upload what it returns and record the result.
Job functions raise :class:`PermanentJobError` for bad input and :class:`TransientJobError` for
passing outages (``jobs.errors``; their roots are in ``contentforge.errors``, the one module of ours
this package imports).

The names below load on first use (PEP 562): importing ``jobs.limits`` or ``jobs.errors`` does not
load the registry and with it Pillow, ffmpeg-python and the speech engines.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "JobError": "jobs.errors",
    "JobInput": "jobs.job_input",
    "JobInterrupted": "jobs.errors",
    "PermanentJobError": "jobs.errors",
    "TransientJobError": "jobs.errors",
    "UnknownJobType": "jobs.errors",
    "MediaLimits": "jobs.limits",
    "JOB_TYPES": "jobs.registry",
    "JobSpec": "jobs.registry",
    "job_spec": "jobs.registry",
    "run_job": "jobs.registry",
    "AssetFields": "jobs.result",
    "JobResult": "jobs.result",
    "OutputFile": "jobs.result",
    "Progress": "jobs.result",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jobs' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
