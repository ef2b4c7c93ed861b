"""What the operator's settings give every job a worker runs: media limits and the speech engine.

Settings hold plain values so that reading them loads no media code; the worker turns them into the
:class:`jobs.limits.MediaLimits` every job function takes and the
:class:`jobs.transcripts.SpeechDefaults` of the transcript job (never the enqueuer's choice: a
tenant naming a model would make the worker load, cache or download it).
"""

from __future__ import annotations

from dataclasses import fields

from contentforge.settings import Settings
from jobs.limits import MediaLimits
from jobs.transcripts import SpeechDefaults
from workers import thread_budget


def media_limits(settings: Settings) -> MediaLimits:
    """The MediaLimits named by ``settings`` (every field of MediaLimits is a setting of the same
    name); ``ffmpeg_threads`` 0 (auto) becomes this process's share of the CPUs."""
    values = {f.name: getattr(settings, f.name) for f in fields(MediaLimits)}
    values["ffmpeg_threads"] = thread_budget.ffmpeg_threads(
        settings.ffmpeg_threads, settings.worker_processes, settings.worker_threads,
        thread_budget.available_cpus())
    return MediaLimits(**values)


def speech_defaults(settings: Settings) -> SpeechDefaults:
    """The speech engine, model and batch size the operator configured (CONTENTFORGE_TRANSCRIPT_*)."""
    return SpeechDefaults(engine=settings.transcript_engine, model=settings.transcript_model,
                          batch_size=settings.transcript_batch_size)
