"""The transcode job: H.264/AAC MP4 renditions (and HLS) for video, AAC and Opus for audio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs import audio, probe, video
from jobs.limits import MediaLimits
from jobs.result import JobResult, Progress

FILE_TYPES = frozenset({"video", "audio"})


def run(
    source: Path, workdir: Path, params: dict[str, Any], limits: MediaLimits, progress: Progress
) -> JobResult:
    probe.check_source(source, limits)
    sniffed = probe.sniff(source)
    probe.require_kind(sniffed, FILE_TYPES, "a transcode")
    info = probe.probe_media(source, limits, sniffed)
    if info.kind == "video":
        return video.run_transcode(source, workdir, params, limits, progress, info)
    return audio.run_transcode(source, workdir, params, limits, progress, info)
