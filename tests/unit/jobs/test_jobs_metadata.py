"""The metadata job: MIME from content, size, hash, and per-kind fields, JSON-ready."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from jobs import JobInput, run_job
from tests import media_factories as mf


def test_image_metadata(tmp_path: Path, workdir: Path) -> None:
    """A JPEG named .mp3 is described as an image with dimensions, orientation and EXIF summary."""
    src = mf.mislabelled(mf.image(tmp_path, size=(300, 200), orientation=6, gps=True), "x.mp3")
    data = run_job("metadata", JobInput(src, workdir)).data
    assert data["mime_type"] == "image/jpeg" and data["kind"] == "image"
    assert data["size_bytes"] == src.stat().st_size
    assert data["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert (data["width"], data["height"], data["orientation"]) == (300, 200, 6)
    assert (data["display_width"], data["display_height"]) == (200, 300)
    assert data["frames"] == 1 and data["animated"] is False and data["has_alpha"] is False
    assert data["exif"]["make"] == "TestCam" and data["exif"]["has_gps"] is True
    assert "48" not in json.dumps(data["exif"])  # GPS coordinates are not copied
    json.dumps(data)


def test_animated_and_alpha(tmp_path: Path, workdir: Path) -> None:
    """An animated GIF reports its frame count; an RGBA PNG reports alpha."""
    gif = run_job("metadata", JobInput(mf.animated_gif(tmp_path, frames=4), workdir)).data
    assert gif["frames"] == 4 and gif["animated"] is True and gif["format"] == "GIF"
    png = run_job("metadata", JobInput(mf.image(tmp_path, "a.png", fmt="PNG", mode="RGBA"), workdir))
    assert png.data["has_alpha"] is True


def test_video_metadata(clip: Path, workdir: Path) -> None:
    """A video reports duration, container, codecs, frame rate, dimensions and audio format."""
    data = run_job("metadata", JobInput(clip, workdir)).data
    assert data["mime_type"] == "video/mp4" and data["kind"] == "video"
    assert abs(data["duration"] - 4.0) < 0.1 and "mp4" in data["container"]
    assert (data["width"], data["height"], data["frame_rate"]) == (320, 240, 15.0)
    assert data["video"]["codec"] == "h264" and data["audio"]["codec"] == "aac"
    assert data["sample_rate"] == 44100 and data["channels"] == 1 and data["bit_rate"] > 0
    json.dumps(data)


def test_audio_metadata(tone: Path, workdir: Path) -> None:
    """An MP3 reports kind audio, codec, channels, sample rate and no video."""
    data = run_job("metadata", JobInput(tone, workdir)).data
    assert (data["mime_type"], data["kind"]) == ("audio/mpeg", "audio")
    assert data["audio"]["codec"] == "mp3" and "video" not in data


def test_document_metadata(tmp_path: Path, workdir: Path) -> None:
    """A PDF is a document with MIME, size and hash only."""
    src = tmp_path / "paper.bin"
    src.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n")
    data = run_job("metadata", JobInput(src, workdir)).data
    assert set(data) == {"mime_type", "kind", "size_bytes", "sha256"}
    assert (data["mime_type"], data["kind"]) == ("application/pdf", "document")
