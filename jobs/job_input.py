"""What every job function takes: one frozen input, built once by the worker (or a caller) per job."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.limits import MediaLimits
from jobs.result import Progress, no_progress

if TYPE_CHECKING:
    from jobs.transcripts import SpeechDefaults


@dataclass(frozen=True)
class JobInput:
    """One job's input: the original, where to write, the job's parameters and the operator's knobs."""

    #: The original, downloaded by the worker; None for job types that never read it (``noop``).
    source: Path | None
    #: An empty directory for the job's output files (the worker uploads what the result names).
    workdir: Path
    #: The job's parameters (the row's ``input_params``), checked against ``jobs.params`` before the run.
    params: dict[str, Any] = field(default_factory=dict)
    limits: MediaLimits = field(default_factory=MediaLimits)
    #: Called with 0.0-1.0 as the job advances; raises ``JobInterrupted`` when the job must stop.
    progress: Progress = no_progress
    #: The operator's speech engine and model for transcripts (settings); None: the defaults.
    speech: SpeechDefaults | None = None
    #: Test-only behaviour allowed (``noop``'s crash; ``CONTENTFORGE_ALLOW_TEST_JOBS``).
    allow_test_jobs: bool = False
