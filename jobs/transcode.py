"""The transcode job: H.264/AAC MP4 renditions (and HLS) for video, AAC and Opus for audio."""

from __future__ import annotations

from jobs import audio, probe, video
from jobs.job_input import JobInput
from jobs.result import JobResult

FILE_TYPES = frozenset({"video", "audio"})


def run(inp: JobInput) -> JobResult:
    probe.check_source(inp.source, inp.limits)
    sniffed = probe.sniff(inp.source)
    probe.require_kind(sniffed, FILE_TYPES, "a transcode")
    info = probe.probe_media(inp.source, inp.limits, sniffed)
    if info.kind == "video":
        return video.run_transcode(inp, info)
    return audio.run_transcode(inp, info)
