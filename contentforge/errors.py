"""One error tree, split by what the caller does next, and the CLI's exit codes.

Two roots, shared by the media jobs, storage and the database layer::

    PermanentError                  retrying cannot help: fail now; str(error) is the readable message
    ├── jobs.PermanentJobError      the input breaks a rule or a decoder
    │   └── jobs.UnknownJobType     no job function under this name
    └── contentforge.storage.StorageKeyMissing      no object under this key
    TransientError                  a passing failure outside the input: retry with backoff
    ├── jobs.TransientJobError      a job's own passing failure (a model download, a full disk)
    ├── contentforge.storage.StorageUnavailable     the store failed (network, throttling, 5xx, disk)
    │   └── workers.supabase_source.ObjectNotYetReadable   a Supabase upload not readable yet
    ├── DatabaseUnavailable         PostgreSQL unreachable (exit code 3)
    └── BrokerUnavailable           Redis unreachable (exit code 3)

The worker fails a job at once on a :class:`PermanentError`, retries it (until ``max_attempts``) on a
:class:`TransientError` or an ``OSError``, and retries anything else as unexpected (a bug). A job
that is cancelled or loses its lease is stopped by ``jobs.JobInterrupted``, which is neither.

:class:`ContentforgeError` is the base of the errors the CLI turns into a message and an exit
code (``exit_code``); ``DatabaseUnavailable`` and ``BrokerUnavailable`` are both.

This module imports nothing: it is the one module of ours that ``jobs`` may import
(``tests/unit/test_import_layers.py``), so the roots are shared without ``jobs`` depending on the
rest of the house or the core depending on ``jobs``.
"""


class PermanentError(Exception):
    """Retrying cannot help (bad input, a missing object): fail now with ``str(error)``."""


class TransientError(Exception):
    """A passing failure outside the input (an outage): retry later, with backoff."""


class ContentforgeError(Exception):
    """Base of contentforge's own errors. ``str(error)`` is meant for a person."""

    exit_code = 1


class ConfigurationError(ContentforgeError):
    exit_code = 2


class DatabaseUnavailable(ContentforgeError, TransientError):
    """PostgreSQL could not be reached or refused the connection."""

    exit_code = 3


class BrokerUnavailable(ContentforgeError, TransientError):
    """Redis could not be reached."""

    exit_code = 3
