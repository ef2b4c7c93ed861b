"""The errors of media jobs, split by what the caller does next (the tree: ``contentforge.errors``).

- ``PermanentJobError``: the input (or the request) is bad. Retrying cannot help: the job fails at
  once and ``str(error)`` is the readable ``error_message`` stored on the job row.
- ``TransientJobError``: something outside the input failed (disk full, a storage or network outage).
  The job is retried with backoff until ``max_attempts``.

Their roots, ``PermanentError`` and ``TransientError``, come from ``contentforge.errors``, a module
that imports nothing: the only module of ours ``jobs`` imports.
"""

from contentforge.errors import PermanentError, TransientError


class JobInterrupted(Exception):
    """Raised by a progress callback to stop a running job: it was cancelled, or its worker lost the
    lease. Job functions let it through (stopping any subprocess) and their result is discarded."""


class JobError(Exception):
    """Base of every error a job function raises on purpose."""


class PermanentJobError(JobError, PermanentError):
    """The input breaks a rule or a decoder: fail now, do not retry."""


class TransientJobError(JobError, TransientError):
    """A passing failure outside the input: retry later."""


class UnknownJobType(PermanentJobError):
    """No job function is registered under this name."""
