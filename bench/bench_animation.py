"""Animated GIF -> video benchmark (issue 13), run by hand:

    .venv/bin/python bench/bench_animation.py [--runs 3]

Three GIFs made the way people make them (a screen capture of flat graphics from Pillow; a clip
turned into a GIF with ffmpeg's palettegen/paletteuse, dithered; a small busy test pattern), each
through the real thumbnail job. Bytes of ``animation.mp4`` and ``animation.webm`` against the GIF
are exact (one run); the time is the median wall time of the whole thumbnail job with the videos,
against the same job with ``{"animation": false}`` (the image variants only, what it did before),
interleaved in the same session. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from common import sh  # noqa: E402

from jobs import JobInput, run_job  # noqa: E402
from tests import media_factories as mf  # noqa: E402


def clip_gif(directory: Path, name: str, source: str, seconds: int, fps: int, width: int) -> Path:
    """A GIF made from a video the common way: ffmpeg palettegen + paletteuse (dithered)."""
    path = directory / name
    subprocess.run([
        "ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi",
        "-t", str(seconds), "-i", source,
        "-filter_complex", f"fps={fps},scale={width}:-1:flags=lanczos,split[a][b];"
        "[a]palettegen[p];[b][p]paletteuse", "-loop", "0", str(path),
    ], check=True, capture_output=True, timeout=300)
    return path


def sources(directory: Path) -> dict[str, Path]:
    return {
        "screen capture 640x360, 60 frames (Pillow)": mf.screen_gif(
            directory, "screen.gif", size=(640, 360), frames=60, blank_frames=2),
        "video clip 480x270, 4 s @ 15 fps (palettegen, dithered)": clip_gif(
            directory, "clip.gif", "mandelbrot=size=480x270:rate=15", 4, 15, 480),
        "busy pattern 320x240, 5 s @ 10 fps (palettegen, dithered)": clip_gif(
            directory, "busy.gif", "testsrc2=size=320x240:rate=10", 5, 10, 320),
    }


def timed(src: Path, work: Path, params: dict) -> tuple[float, object]:
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = run_job("thumbnail", JobInput(src, work, params))
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cpu = sh("lscpu | grep 'Model name'").split(":")[-1].strip()
    print(f"machine: {platform.node()}, {sh('nproc')} CPUs, {cpu}")
    print(f"ffmpeg: {sh('ffmpeg -version | head -1')}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for label, src in sources(d).items():
            gif_bytes = src.stat().st_size
            with_video, without = [], []
            sizes: dict[str, int] = {}
            frames = duration = None
            for run in range(args.runs):  # interleaved: baseline, then with videos, each round
                t, _ = timed(src, d / f"{src.stem}_{run}_base", {"animation": False})
                without.append(t)
                t, result = timed(src, d / f"{src.stem}_{run}_video", {})
                with_video.append(t)
                sizes = {o.name: o.bytes for o in result.outputs if o.name.startswith("animation.")}
                frames, duration = result.data["animation"]["frames"], result.data["animation"]["duration"]
            mp4, webm = sizes["animation.mp4"], sizes["animation.webm"]
            rows.append(
                f"| {label} | {frames} / {duration:g} s | {gif_bytes:,} | {mp4:,} ({mp4 / gif_bytes:.3f}) "
                f"| {webm:,} ({webm / gif_bytes:.3f}) | {statistics.median(without):.2f} "
                f"| {statistics.median(with_video):.2f} | {statistics.median(with_video) / statistics.median(without):.1f}x |"
            )
    print()
    print("| GIF | frames / duration | GIF bytes | animation.mp4 bytes (ratio to GIF) "
          "| animation.webm bytes (ratio) | job without videos, median s | with videos, median s | time ratio |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
