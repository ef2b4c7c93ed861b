"""Audio: waveform (thumbnail job) and loudness-normalised AAC and Opus (transcode job).

Loudness follows EBU R128 as measured by ffmpeg's ``loudnorm``: a first pass measures integrated
loudness, true peak and loudness range, a second applies one linear gain when it can (dynamic
normalisation otherwise) and encodes both outputs from one decode.
"""

from __future__ import annotations

import array
import json
import re
import sys
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python
from PIL import Image, ImageDraw

from jobs import ffmpeg, probe
from jobs.errors import PermanentJobError
from jobs.job_input import JobInput
from jobs.limits import MediaLimits
from jobs.result import JobResult, OutputFile, Progress

#: Integrated loudness target in LUFS. -16 LUFS is the usual target for speech and music on the
#: web and in podcasts (EBU R128's broadcast -23 LUFS sounds too quiet on phones and laptops).
DEFAULT_LOUDNESS_LUFS = -16.0
#: True-peak ceiling in dBTP and loudness-range target in LU (loudnorm's own defaults).
TRUE_PEAK_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0
AAC_BITRATE = "128k"
OPUS_BITRATE = "96k"
#: Waveform: sample rate the peaks are computed at, number of peak pairs, image size.
WAVEFORM_SAMPLE_RATE = 8000
WAVEFORM_POINTS = 1000
WAVEFORM_IMAGE_SIZE = (1800, 280)


def waveform(
    source: Path, info: probe.MediaInfo, workdir: Path, limits: MediaLimits, progress: Progress
) -> list[OutputFile]:
    """Peaks (min/max pairs, 8-bit, audiowaveform's JSON layout) and a PNG drawing of them."""
    raw = workdir / "_waveform.s16le"
    stream = ffmpeg.input_stream(source, info.sniffed.decoder or "").audio.output(
        str(raw), f="s16le", acodec="pcm_s16le", ac=1, ar=WAVEFORM_SAMPLE_RATE
    )
    ffmpeg.run_ffmpeg(stream, timeout=limits.max_process_seconds, duration=info.duration,
                      progress=lambda f: progress(0.8 * f), what="waveform decoding")
    total = raw.stat().st_size // 2
    if total == 0:
        raise PermanentJobError("the audio stream decoded to no samples")
    points = min(WAVEFORM_POINTS, total)
    per_point = total / points
    peaks: list[int] = []
    with open(raw, "rb") as fh:
        for i in range(points):
            count = int((i + 1) * per_point) - int(i * per_point)
            samples = array.array("h")
            samples.frombytes(fh.read(count * 2))
            if sys.byteorder == "big":
                samples.byteswap()
            lo, hi = (min(samples), max(samples)) if samples else (0, 0)
            peaks += [lo >> 8, hi >> 8]  # 16-bit to 8-bit, as audiowaveform's "bits": 8
    raw.unlink()
    doc = {
        "version": 2,
        "channels": 1,
        "sample_rate": WAVEFORM_SAMPLE_RATE,
        "samples_per_pixel": round(per_point),
        "bits": 8,
        "length": points,
        "duration": info.duration,
        "data": peaks,
    }
    json_path = workdir / "waveform.json"
    json_path.write_text(json.dumps(doc, separators=(",", ":")))
    png_path = workdir / "waveform.png"
    _draw(peaks, png_path)
    return [
        OutputFile("waveform.json", json_path, "json", "application/json",
                   json_path.stat().st_size, extra={"points": points}),
        OutputFile("waveform.png", png_path, "png", "image/png", png_path.stat().st_size,
                   width=WAVEFORM_IMAGE_SIZE[0], height=WAVEFORM_IMAGE_SIZE[1]),
    ]


def _draw(peaks: list[int], path: Path) -> None:
    width, height = WAVEFORM_IMAGE_SIZE
    im = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    points = len(peaks) // 2
    mid = height / 2
    for x in range(width):
        i = min(points - 1, x * points // width)
        lo, hi = peaks[2 * i], peaks[2 * i + 1]
        draw.line([(x, mid - hi / 128 * mid), (x, mid - lo / 128 * mid)], fill=(60, 90, 200, 255))
    im.save(path, format="PNG", optimize=True)


def run_thumbnail(inp: JobInput, info: probe.MediaInfo) -> JobResult:
    source, workdir, limits, progress = inp.source, inp.workdir, inp.limits, inp.progress
    outputs = waveform(source, info, workdir, limits, progress)
    progress(1.0)
    return JobResult(
        outputs=tuple(outputs),
        data={"source": "audio", "duration": info.duration, "variants": len(outputs),
              "blurhash": None, "dominant_color": None},
    )


# --------------------------------------------------------------------------- loudness


def _loudnorm_json(stderr: bytes) -> dict[str, str]:
    text = stderr.decode("utf-8", "replace")
    match = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", text)
    if not match:
        raise PermanentJobError("loudness could not be measured (no loudnorm report)")
    return json.loads(match.group(0))


def measure_loudness(
    source: Path, demuxer: str, target: float, *, timeout: float, duration: float | None = None,
    progress: Progress = lambda f: None,
) -> dict[str, float]:
    """loudnorm's first-pass measurement: input_i (LUFS), input_tp, input_lra, input_thresh."""
    stream = ffmpeg.input_stream(source, demuxer).audio.filter(
        "loudnorm", I=target, TP=TRUE_PEAK_DBTP, LRA=LOUDNESS_RANGE_LU, print_format="json"
    ).output("-", f="null")
    stderr = ffmpeg.run_ffmpeg(stream, timeout=timeout, duration=duration, progress=progress,
                               what="loudness measurement", loglevel="info")
    report = _loudnorm_json(stderr)
    out: dict[str, float] = {}
    for key in ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset"):
        try:
            out[key] = float(report[key])
        except (KeyError, ValueError) as exc:
            raise PermanentJobError(f"loudness could not be measured ({key} missing)") from exc
    return out


def is_silent(measured: dict[str, float]) -> bool:
    """True when loudnorm measured nothing to normalise (below its -70 LUFS gate)."""
    return measured["input_i"] == float("-inf") or measured["input_i"] < -70


def normalise_args(target: float, measured: dict[str, float]) -> dict[str, Any]:
    """loudnorm's second pass: linear gain from the first pass's measurement."""
    return {"I": target, "TP": TRUE_PEAK_DBTP, "LRA": LOUDNESS_RANGE_LU,
            "measured_I": measured["input_i"], "measured_TP": measured["input_tp"],
            "measured_LRA": measured["input_lra"], "measured_thresh": measured["input_thresh"],
            "offset": measured["target_offset"], "linear": "true"}


def parse_target(params: dict[str, Any]) -> float:
    target = params.get("loudness_lufs", DEFAULT_LOUDNESS_LUFS)
    if not isinstance(target, (int, float)) or not -70 <= target <= -5:
        raise PermanentJobError("loudness_lufs must be a number between -70 and -5")
    return float(target)


def run_transcode(inp: JobInput, info: probe.MediaInfo) -> JobResult:
    """``audio.m4a`` (AAC) and ``audio.opus`` (Opus), both normalised to the loudness target; a
    silent recording (nothing above loudnorm's gate) is encoded as it is."""
    source, workdir, params, limits, progress = inp.source, inp.workdir, inp.params, inp.limits, inp.progress
    target = parse_target(params)
    timer = ffmpeg.Timer(limits.max_process_seconds)
    demuxer = info.sniffed.decoder or ""
    measured = measure_loudness(source, demuxer, target, timeout=timer.remaining(),
                                duration=info.duration, progress=lambda f: progress(0.4 * f))
    silent = is_silent(measured)  # silence is not an error: there is just nothing to normalise
    channels = min(2, (info.audio or {}).get("channels") or 2)
    sound = ffmpeg.input_stream(source, demuxer).audio
    if not silent:
        sound = sound.filter("loudnorm", **normalise_args(target, measured))
    normalised = sound.filter("aresample", 48000).filter_multi_output("asplit", 2)
    m4a, opus = workdir / "audio.m4a", workdir / "audio.opus"
    common = {"ac": channels, "map_metadata": -1, "fs": limits.max_output_bytes}
    graph = ffmpeg_python.merge_outputs(
        normalised.stream(0).output(str(m4a), acodec="aac", audio_bitrate=AAC_BITRATE,
                                    movflags="+faststart", f="mp4", **common),
        normalised.stream(1).output(str(opus), acodec="libopus", audio_bitrate=OPUS_BITRATE,
                                    f="ogg", **common),
    )
    ffmpeg.run_ffmpeg(graph, timeout=timer.remaining(), duration=info.duration,
                      progress=lambda f: progress(0.4 + 0.6 * f), what="audio transcode")
    outputs = [
        OutputFile("audio.m4a", m4a, "m4a", "audio/mp4",
                   ffmpeg.check_output_size(m4a, limits.max_output_bytes),
                   extra={"codec": "aac", "bitrate": AAC_BITRATE}),
        OutputFile("audio.opus", opus, "opus", "audio/ogg; codecs=opus",
                   ffmpeg.check_output_size(opus, limits.max_output_bytes),
                   extra={"codec": "opus", "bitrate": OPUS_BITRATE}),
    ]
    progress(1.0)
    return JobResult(
        outputs=tuple(outputs),
        data={
            "source": "audio",
            "duration": info.duration,
            "loudness_target_lufs": target,
            "audio_normalised": not silent,
            "input_loudness_lufs": None if silent else measured["input_i"],
            # loudnorm reports -inf for digital silence, which JSON cannot carry.
            "input_true_peak_dbtp": None if silent else measured["input_tp"],
            "input_loudness_range_lu": None if silent else measured["input_lra"],
        },
    )
