"""Animated images (GIF, WebP, APNG) as video that plays: a muted H.264 MP4 and a VP9 WebM.

Pillow decodes the frames (ffmpeg cannot read animated WebP, and Pillow applies GIF disposal and
APNG blending), one at a time, onto white where they are transparent; they are piped raw into one
ffmpeg run that writes both files. Each frame is held for its own duration: the output frame rate
is the lowest one that starts every frame within 10 ms of its time (``timing``; capped at
``ANIMATION_MAX_FPS``; a frame held longer is repeated). Output dimensions are even (yuv420p needs it), the MP4 is
``+faststart``, neither file has an audio track.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import reduce
from pathlib import Path
from typing import IO

from PIL import Image

from jobs import ffmpeg, probe
from jobs.errors import PermanentJobError
from jobs.limits import MediaLimits
from jobs.result import OutputFile

#: Highest frame rate of the video made from an animation, in frames per second: browsers show
#: GIF frames no faster than 50 per second (20 ms) anyway.
ANIMATION_MAX_FPS = 50
#: Browsers play a GIF frame declared at 10 ms or less for 100 ms; so do we.
SHORTEST_FRAME_MS = 20
DEFAULT_FRAME_MS = 100
#: How far, in milliseconds, a frame may start from its time in the image when a lower frame
#: rate is chosen: GIF delays are counted in 10 ms steps, and players show them no finer.
ANIMATION_TIMING_TOLERANCE_MS = 10
#: Most video frames one animation may become (10 minutes at 50 fps): frames held for long
#: durations are repeated, so a few frames can otherwise ask for hours of encoding.
ANIMATION_MAX_VIDEO_FRAMES = 30_000
#: Widest animation video, in pixels: an animation wider than this is scaled down.
ANIMATION_MAX_WIDTH = 1920
#: Encoder settings. x264 CRF 23 and VP9 CRF 35 in constant-quality mode keep flat, sharp GIF
#: graphics clean; ``-tune animation`` is not used because photographic GIFs are common.
_MP4_OPTIONS = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-profile:v", "high",
                "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-an", "-f", "mp4"]
_WEBM_OPTIONS = ["-c:v", "libvpx-vp9", "-crf", "35", "-b:v", "0", "-deadline", "good",
                 "-cpu-used", "4", "-row-mt", "1", "-pix_fmt", "yuv420p", "-an", "-f", "webm"]


@dataclass(frozen=True)
class Timing:
    """How the animation's frames map onto a constant-rate video."""

    fps: Fraction
    #: How many video frames each image frame lasts.
    repeats: tuple[int, ...]

    @property
    def seconds(self) -> float:
        return float(sum(self.repeats) / self.fps)


def frame_durations(im: Image.Image) -> list[int]:
    """Each frame's display time in milliseconds, as browsers play it."""
    durations = []
    for i in range(im.n_frames):
        with probe.decoding("animation frame"):
            im.seek(i)
            im.load()  # WebP names a frame's duration only once it is loaded
        ms = int(im.info.get("duration") or 0)
        durations.append(DEFAULT_FRAME_MS if ms <= 10 else max(ms, SHORTEST_FRAME_MS))
    im.seek(0)
    return durations


def _plan(durations: list[int], fps: Fraction) -> tuple[Timing, float]:
    """Frames placed at ``fps`` by rounding each frame's start time (so errors never add up),
    and the largest start-time error in milliseconds."""
    starts, at = [], 0
    for ms in (*durations, 0):
        starts.append(at)
        at += ms
    slots = [round(t * fps / 1000) for t in starts]
    error = max(abs(float(n / fps * 1000) - t) for n, t in zip(slots, starts, strict=True))
    repeats = tuple(b - a for a, b in itertools.pairwise(slots))
    return Timing(fps, repeats), error


def timing(durations: list[int]) -> Timing:
    """The lowest frame rate (at most ``ANIMATION_MAX_FPS``) at which every frame is shown and
    starts within ``ANIMATION_TIMING_TOLERANCE_MS`` of its time in the image: a 15 fps GIF stored
    with 60 and 70 ms delays stays 15 fps instead of becoming 50 fps of repeated frames."""
    exact = Fraction(1000, reduce(math.gcd, durations))
    lowest = max(1, math.ceil(1000 / max(durations)))
    for fps in range(lowest, ANIMATION_MAX_FPS + 1):
        if Fraction(fps) > exact:
            break
        plan, error = _plan(durations, Fraction(fps))
        if min(plan.repeats) >= 1 and error <= ANIMATION_TIMING_TOLERANCE_MS:
            return plan
    return _plan(durations, min(exact, Fraction(ANIMATION_MAX_FPS)))[0]


def is_animated(im: Image.Image) -> bool:
    return bool(getattr(im, "is_animated", False)) and getattr(im, "n_frames", 1) > 1


def _frames(im: Image.Image, size: tuple[int, int]) -> Iterator[Image.Image]:
    for i in range(im.n_frames):
        with probe.decoding("animation frame"):
            im.seek(i)
            frame = im.convert("RGBA")
        if frame.size != size:  # a frame is never larger than the canvas, but be sure
            frame = frame.crop((0, 0, *size))
        flat = Image.new("RGB", size, (255, 255, 255))
        flat.paste(frame, mask=frame.getchannel("A"))
        yield flat


def _even_size(width: int, height: int) -> tuple[int, int]:
    if width > ANIMATION_MAX_WIDTH:
        height, width = round(height * ANIMATION_MAX_WIDTH / width), ANIMATION_MAX_WIDTH
    return max(2, width - width % 2), max(2, height - height % 2)


def encode(
    im: Image.Image, workdir: Path, limits: MediaLimits, source_bytes: int
) -> tuple[list[OutputFile], dict[str, object]]:
    """Write ``animation.mp4`` and ``animation.webm`` from the animated image ``im``."""
    durations = frame_durations(im)
    plan = timing(durations)
    if plan.seconds > limits.max_duration_seconds:
        raise PermanentJobError(
            f"animation lasts {plan.seconds:.0f} s, above the {limits.max_duration_seconds:.0f} s limit"
        )
    if sum(plan.repeats) > ANIMATION_MAX_VIDEO_FRAMES:
        raise PermanentJobError(
            f"animation would need {sum(plan.repeats)} video frames, above the "
            f"{ANIMATION_MAX_VIDEO_FRAMES} frame limit"
        )
    size = im.size
    out_w, out_h = _even_size(*size)
    mp4, webm = workdir / "animation.mp4", workdir / "animation.webm"
    args = [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
        "-progress", "pipe:1", "-y",
        "-protocol_whitelist", "pipe", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{size[0]}x{size[1]}", "-framerate", f"{plan.fps.numerator}/{plan.fps.denominator}", "-i", "pipe:0",
        "-filter_complex", f"[0:v]scale={out_w}:{out_h}:flags=lanczos,split=2[a][b]",
        "-map", "[a]", *_MP4_OPTIONS, "-fs", str(limits.max_output_bytes), str(mp4),
        "-map", "[b]", *_WEBM_OPTIONS, "-fs", str(limits.max_output_bytes), str(webm),
    ]

    def feed(stdin: IO[bytes]) -> None:
        for frame, repeat in zip(_frames(im, size), plan.repeats, strict=True):
            raw = frame.tobytes()
            for _ in range(repeat):
                stdin.write(raw)

    ffmpeg.run_argv(args, timeout=limits.max_process_seconds, what="animation encode", feed=feed,
                    outputs=[str(mp4), str(webm)])
    outputs = []
    for path, fmt, content_type in ((mp4, "mp4", "video/mp4"), (webm, "webm", "video/webm")):
        size_bytes = ffmpeg.check_output_size(path, limits.max_output_bytes)
        outputs.append(OutputFile(
            path.name, path, fmt, content_type, size_bytes, width=out_w, height=out_h,
            extra={"ratio_to_source": round(size_bytes / source_bytes, 4)},
        ))
    data: dict[str, object] = {
        "frames": len(durations),
        "duration": round(plan.seconds, 3),
        "fps": round(float(plan.fps), 3),
        "mp4_ratio_to_source": outputs[0].extra["ratio_to_source"],
        "webm_ratio_to_source": outputs[1].extra["ratio_to_source"],
    }
    return outputs, data
