"""The thumbnail job: image variants, a video poster and storyboard, or an audio waveform.

Which one depends on what the file's content is (``jobs.probe``), never on its name.
"""

from __future__ import annotations

from jobs import audio, images, probe, video
from jobs.job_input import JobInput
from jobs.result import JobResult

FILE_TYPES = frozenset({"image", "video", "audio"})


def run(inp: JobInput) -> JobResult:
    probe.check_source(inp.source, inp.limits)
    sniffed = probe.sniff(inp.source)
    probe.require_kind(sniffed, FILE_TYPES, "a thumbnail")
    if sniffed.kind == "image":
        return images.run_thumbnail(inp, sniffed)
    info = probe.probe_media(inp.source, inp.limits, sniffed)
    if info.kind == "video":
        return video.run_thumbnail(inp, info)
    return audio.run_thumbnail(inp, info)
