"""Media processing: a source file and options in, files and a frozen result record out.

Nothing here touches the database, the broker or object storage: the workers download the original
to a temporary directory, call :func:`run_job`, upload what it returns and record the result.
Job functions raise :class:`PermanentJobError` for bad input and :class:`TransientJobError` for
passing outages (``jobs.errors``).
"""

from jobs.errors import JobError, JobInterrupted, PermanentJobError, TransientJobError, UnknownJobType
from jobs.limits import MediaLimits
from jobs.registry import JOB_TYPES, JobSpec, run_job
from jobs.result import JobResult, OutputFile, Progress

__all__ = [
    "JOB_TYPES",
    "JobError",
    "JobInterrupted",
    "JobResult",
    "JobSpec",
    "MediaLimits",
    "OutputFile",
    "PermanentJobError",
    "Progress",
    "TransientJobError",
    "UnknownJobType",
    "run_job",
]
