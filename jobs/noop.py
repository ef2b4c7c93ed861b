"""A job that does no media work: it proves the queue machinery and measures its overhead.

Parameters (all optional): ``sleep_seconds`` (float, at most 60), ``fail`` (``"permanent"`` or
``"transient"``), ``crash`` (bool: the process exits at once, like an OOM kill; honoured only when
the worker runs with test jobs allowed, ``JobInput.allow_test_jobs`` from
``CONTENTFORGE_ALLOW_TEST_JOBS``), ``tag`` (text that makes otherwise identical jobs distinct),
``output_bytes`` (integer, at most :data:`MAX_NOOP_OUTPUT_BYTES`: write one output file,
``noop.bin``, of that many random bytes, so that each attempt's file differs from every other's; the
tests of fenced outputs tell attempts apart by it). A test-only job type: ``enqueue_asset_job``
refuses it until an operator turns test-only types on in the database (``jobs.params`` has the schema).
"""

from __future__ import annotations

import hashlib
import os
import time

from jobs.errors import PermanentJobError, TransientJobError
from jobs.job_input import JobInput
from jobs.result import JobResult, OutputFile

#: Upper bound of ``sleep_seconds``: a no-op job must not hold a worker thread for long.
MAX_NOOP_SLEEP_SECONDS = 60.0
#: Largest ``output_bytes``: the file only has to tell one attempt from another.
MAX_NOOP_OUTPUT_BYTES = 1024 * 1024
#: How often a sleeping noop reports progress (and so notices a cancel), in seconds.
SLEEP_SLICE_SECONDS = 0.1


def run(inp: JobInput) -> JobResult:
    params, progress = inp.params, inp.progress
    sleep = float(params.get("sleep_seconds", 0))
    if not 0 <= sleep <= MAX_NOOP_SLEEP_SECONDS:
        raise PermanentJobError(
            f"sleep_seconds must be between 0 and {MAX_NOOP_SLEEP_SECONDS:g}, got {sleep:g}"
        )
    if params.get("crash"):
        if not inp.allow_test_jobs:
            raise PermanentJobError("crash was requested but test jobs are not allowed here")
        os._exit(137)
    # Sleep in short slices, reporting progress after each: the progress callback raises when the
    # job was cancelled or its lease lost, so a cancelled noop stops like a real job does.
    deadline = time.monotonic() + sleep
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, SLEEP_SLICE_SECONDS))
        progress(1 - max(deadline - time.monotonic(), 0) / sleep)
    progress(1.0)
    fail = params.get("fail")
    if fail == "permanent":
        raise PermanentJobError("failure requested by the job's parameters")
    if fail == "transient":
        raise TransientJobError("transient failure requested by the job's parameters")
    if fail is not None:
        raise PermanentJobError(f"fail must be 'permanent' or 'transient', got {fail!r}")
    size = int(params.get("output_bytes", 0))
    if not 0 <= size <= MAX_NOOP_OUTPUT_BYTES:
        raise PermanentJobError(f"output_bytes must be between 0 and {MAX_NOOP_OUTPUT_BYTES}, got {size}")
    if not size:
        return JobResult(data={"slept_seconds": sleep})
    out = inp.workdir / "noop.bin"
    data = os.urandom(size)
    out.write_bytes(data)
    # The digest lets a test tell which attempt's bytes a stored file holds.
    return JobResult(outputs=(OutputFile("noop.bin", out, "bin", "application/octet-stream", size),),
                     data={"slept_seconds": sleep, "sha256": hashlib.sha256(data).hexdigest()})
