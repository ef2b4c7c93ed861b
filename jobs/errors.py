"""One error tree for media jobs, split by what the caller does next.

- ``PermanentJobError``: the input (or the request) is bad. Retrying cannot help: the job fails at
  once and ``str(error)`` is the readable ``error_message`` stored on the job row.
- ``TransientJobError``: something outside the input failed (disk full, a storage or network outage).
  The job is retried with backoff until ``max_attempts``.
"""


class JobError(Exception):
    """Base of every error a job function raises on purpose."""


class PermanentJobError(JobError):
    """The input breaks a rule or a decoder: fail now, do not retry."""


class TransientJobError(JobError):
    """A passing failure outside the input: retry later."""


class UnknownJobType(PermanentJobError):
    """No job function is registered under this name."""
