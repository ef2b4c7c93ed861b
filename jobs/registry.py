"""Which job functions exist, which asset file types each accepts, and one entry point to run them.

The database keeps the same table (``app.job_types``, seeded by the migrations) so that
``enqueue_asset_job`` can refuse a transcode of an image from plain SQL; a test keeps both in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs import ffmpeg, metadata, noop, optimize, thumbnail, transcode, transcripts
from jobs.errors import UnknownJobType
from jobs.limits import MediaLimits
from jobs.params import check_params
from jobs.result import JobResult, Progress, no_progress

ALL_FILE_TYPES = frozenset({"image", "video", "audio", "document", "archive", "other"})


@dataclass(frozen=True)
class JobSpec:
    name: str
    file_types: frozenset[str]
    func: Callable[..., JobResult]
    #: False for job types that never read the original (the worker then skips the download).
    needs_source: bool = True


JOB_TYPES: dict[str, JobSpec] = {}


def register(spec: JobSpec) -> JobSpec:
    JOB_TYPES[spec.name] = spec
    return spec


register(JobSpec("metadata", ALL_FILE_TYPES, metadata.run))
register(JobSpec("thumbnail", thumbnail.FILE_TYPES, thumbnail.run))
register(JobSpec("transcode", transcode.FILE_TYPES, transcode.run))
register(JobSpec("transcript", transcripts.FILE_TYPES, transcripts.run))
register(JobSpec("optimize", optimize.FILE_TYPES, optimize.run))
register(JobSpec("noop", ALL_FILE_TYPES, noop.run, needs_source=False))


def job_types_for(kind: str) -> list[str]:
    """Job types (other than ``noop``) that accept an asset of ``kind``, in registry order."""
    return [n for n, spec in JOB_TYPES.items() if n != "noop" and kind in spec.file_types]


def run_job(
    job_type: str,
    source: Path | None,
    workdir: Path,
    params: dict[str, Any] | None = None,
    limits: MediaLimits | None = None,
    progress: Progress = no_progress,
    *,
    allow_test_jobs: bool = False,
    speech: transcripts.SpeechDefaults | None = None,
) -> JobResult:
    """Run one job function: ``source`` and ``params`` in, a ``JobResult`` with files in ``workdir`` out.

    ``speech`` is the operator's choice of speech engine and model for transcripts (from settings).
    """
    spec = JOB_TYPES.get(job_type)
    if spec is None:
        raise UnknownJobType(f"unknown job type {job_type!r}; known: {', '.join(sorted(JOB_TYPES))}")
    params = dict(params or {})
    check_params(job_type, params)
    kwargs: dict[str, Any] = {}
    if job_type == "noop":
        kwargs["allow_crash"] = allow_test_jobs
    elif job_type == "transcript" and speech is not None:
        kwargs["defaults"] = speech
    limits = limits or MediaLimits()
    with ffmpeg.thread_budget(limits.ffmpeg_threads):
        return spec.func(source, workdir, dict(params), limits, progress, **kwargs)
