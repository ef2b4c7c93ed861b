"""Which job functions exist, which asset file types each accepts, and one entry point to run them.

The database keeps the same table (``app.job_types``, seeded by the migrations) so that
``enqueue_asset_job`` can refuse a transcode of an image from plain SQL; a test keeps both in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from jobs import ffmpeg, metadata, noop, optimize, thumbnail, transcode, transcripts
from jobs.errors import UnknownJobType
from jobs.job_input import JobInput
from jobs.params import check_params
from jobs.result import JobResult

ALL_FILE_TYPES = frozenset({"image", "video", "audio", "document", "archive", "other"})


@dataclass(frozen=True)
class JobSpec:
    name: str
    file_types: frozenset[str]
    func: Callable[[JobInput], JobResult]
    #: False for job types that never read the original (the worker then skips the download).
    needs_source: bool = True

    def run(self, inp: JobInput) -> JobResult:
        """Check the input's parameters against the job type's schema, then run the job function
        (on a copy of the parameters: the function may keep them). Every ffmpeg run inside uses
        the input's thread budget (``MediaLimits.ffmpeg_threads``)."""
        check_params(self.name, inp.params)
        with ffmpeg.thread_budget(inp.limits.ffmpeg_threads):
            return self.func(replace(inp, params=dict(inp.params)))


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


def job_spec(job_type: str) -> JobSpec:
    """The registered job type ``job_type``; :class:`UnknownJobType` when there is none."""
    spec = JOB_TYPES.get(job_type)
    if spec is None:
        raise UnknownJobType(f"unknown job type {job_type!r}; known: {', '.join(sorted(JOB_TYPES))}")
    return spec


def run_job(job_type: str, inp: JobInput) -> JobResult:
    """Run one job function: ``inp`` (the source, its parameters, limits) in, a ``JobResult`` with
    files in ``inp.workdir`` out."""
    return job_spec(job_type).run(inp)
