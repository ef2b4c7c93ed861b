"""The thumbnail job: image variants, a video poster and storyboard, or an audio waveform.

Which one depends on what the file's content is (``jobs.probe``), never on its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs import audio, images, probe, video
from jobs.limits import MediaLimits
from jobs.result import JobResult, Progress

FILE_TYPES = frozenset({"image", "video", "audio"})


def run(
    source: Path, workdir: Path, params: dict[str, Any], limits: MediaLimits, progress: Progress
) -> JobResult:
    probe.check_source(source, limits)
    sniffed = probe.sniff(source)
    probe.require_kind(sniffed, FILE_TYPES, "a thumbnail")
    if sniffed.kind == "image":
        return images.run_thumbnail(source, workdir, params, limits, progress, sniffed)
    info = probe.probe_media(source, limits, sniffed)
    if info.kind == "video":
        return video.run_thumbnail(source, workdir, params, limits, progress, info)
    return audio.run_thumbnail(source, workdir, params, limits, progress, info)
