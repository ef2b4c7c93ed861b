"""One error tree: the permanent and transient errors of jobs, storage and the database layer share two roots."""

from __future__ import annotations

import pytest

from contentforge.errors import BrokerUnavailable, DatabaseUnavailable, PermanentError, TransientError
from contentforge.storage import InvalidKey, StorageKeyMissing, StorageUnavailable
from jobs.errors import JobInterrupted, PermanentJobError, TransientJobError, UnknownJobType
from workers.lease import JobStopped
from workers.supabase_source import ObjectNotYetReadable


@pytest.mark.parametrize("error", [PermanentJobError, UnknownJobType, StorageKeyMissing])
def test_errors_that_retrying_cannot_help_are_permanent(error: type[Exception]) -> None:
    """Bad input and a missing object derive from PermanentError, never from TransientError."""
    assert issubclass(error, PermanentError) and not issubclass(error, TransientError)


@pytest.mark.parametrize("error", [TransientJobError, StorageUnavailable, ObjectNotYetReadable,
                                   DatabaseUnavailable, BrokerUnavailable])
def test_outages_are_transient(error: type[Exception]) -> None:
    """Outages of a job, the store, PostgreSQL and Redis derive from TransientError, never from PermanentError."""
    assert issubclass(error, TransientError) and not issubclass(error, PermanentError)


@pytest.mark.parametrize("error", [JobInterrupted, JobStopped, InvalidKey])
def test_stops_and_bugs_are_neither(error: type[Exception]) -> None:
    """A stopped job and an invalid key (a bug of ours) are neither permanent nor transient."""
    assert not issubclass(error, (PermanentError, TransientError))
