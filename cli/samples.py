"""Sample media for `contentforge process` with no files: a photo, a short video with speech and a
podcast clip, made locally with Pillow, espeak-ng and ffmpeg (no downloads)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw

SPEECH = ("Welcome to contentforge. This short clip was spoken by a speech synthesizer, "
          "so that the transcript job has something real to recognise.")
PODCAST = ("Hello and welcome to the podcast. Today we talk about publishing courses, "
           "videos and articles for a growing community.")


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def _speech(text: str, out: Path) -> bool:
    """Speak ``text`` to a WAV file with espeak-ng; False when espeak-ng is not installed."""
    exe = shutil.which("espeak-ng")
    if not exe:
        return False
    _run([exe, "-v", "en-us", "-s", "150", "-w", str(out), text])
    return True


def photo(folder: Path) -> Path:
    """A 3000x2000 JPEG with an EXIF orientation tag (rotated 90°) and GPS tags to strip."""
    out = folder / "sample-photo.jpg"
    img = Image.new("RGB", (3000, 2000))
    draw = ImageDraw.Draw(img)
    for y in range(0, 2000, 8):
        draw.rectangle([0, y, 3000, y + 8], fill=(30 + y // 10, 90 + y // 25, 160 - y // 20))
    draw.ellipse([1100, 500, 1900, 1300], fill=(250, 200, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 12.0), 3: "E", 4: (4.0, 53.0, 30.0)}  # GPSInfo
    img.save(out, quality=90, exif=exif)
    return out


def video(folder: Path) -> Path:
    """An 8-second 1280x720 H.264 video with a spoken sentence (or a tone without espeak-ng)."""
    out = folder / "sample-lesson.mp4"
    wav = folder / "sample-lesson.wav"
    audio_in = ["-i", str(wav)] if _speech(SPEECH, wav) else ["-f", "lavfi", "-i", "sine=frequency=440:duration=8"]
    _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error",
          "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=8", *audio_in,
          "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
          "-c:a", "aac", "-b:a", "96k", "-t", "8", "-shortest", str(out)])
    wav.unlink(missing_ok=True)
    return out


def podcast(folder: Path) -> Path:
    """A podcast clip: speech over a quiet tone bed, AAC in an M4A file."""
    out = folder / "sample-podcast.m4a"
    wav = folder / "sample-podcast.wav"
    if _speech(PODCAST, wav):
        inputs = ["-i", str(wav), "-f", "lavfi", "-i", "sine=frequency=220:duration=10"]
        mix = ["-filter_complex", "[1:a]volume=0.05[bed];[0:a][bed]amix=inputs=2:duration=first[a]", "-map", "[a]"]
    else:
        inputs = ["-f", "lavfi", "-i", "sine=frequency=220:duration=10"]
        mix = []
    _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *inputs, *mix, "-c:a", "aac", "-b:a", "96k", str(out)])
    wav.unlink(missing_ok=True)
    return out


def make_samples(folder: Path) -> list[Path]:
    """The three samples in ``folder`` (kept and reused by later runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, make in (("sample-photo.jpg", photo), ("sample-lesson.mp4", video), ("sample-podcast.m4a", podcast)):
        path = folder / name
        out.append(path if path.exists() and path.stat().st_size else make(folder))
    return out
