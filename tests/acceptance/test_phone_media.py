"""What phones upload by default, through the README's first command (`contentforge process`, embedded
PostgreSQL and Redis): a HEIC photo and an HLG video with speech end `ready`, with sRGB image
variants and BT.709 renditions as ffprobe reads them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import media_factories as mf
from tests.acceptance.test_process import _process


def _colour(path: Path) -> tuple[str, ...]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=pix_fmt,color_primaries,color_transfer,color_space,color_range", "-of", "json",
         str(path)], capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)["streams"][0]
    return (s["pix_fmt"], s["color_primaries"], s["color_transfer"], s["color_space"], s["color_range"])


@pytest.mark.slow
def test_heic_photo_and_hlg_video_end_ready(tmp_path: Path) -> None:
    """A ProPhoto HEIC and an HLG .mov recorded like a phone's end ready with tagged SDR outputs."""
    heic = mf.heic(tmp_path, "IMG_0001.HEIC", size=(1200, 900), orientation=6,
                   icc=mf.PROPHOTO_ICC.read_bytes(), gps=True)
    picture = mf.hdr_video(tmp_path, "_hlg.mp4", size=(1280, 720), seconds=3)
    speech = mf.speech_wav(tmp_path, "_speech.wav")
    movie = tmp_path / "IMG_0002.MOV"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(picture), "-i", str(speech),
                    "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-shortest",
                    "-f", "mov", str(movie)], check=True, capture_output=True, timeout=120)
    r = _process(tmp_path, "--json", str(heic), str(movie), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assets = {Path(a["file"]).name: a for a in json.loads(r.stdout)["assets"]}
    photo, video = assets["IMG_0001.HEIC"], assets["IMG_0002.MOV"]
    assert (photo["kind"], photo["status"], video["kind"], video["status"]) == (
        "image", "ready", "video", "ready")
    storage = Path(photo["storage"])
    assert any(k.endswith("thumb_640.webp") for k in photo["files"])
    assert {"video_720p.mp4", "video_480p.mp4"} <= set(video["renditions"])
    for key in video["files"]:
        if key.endswith(".mp4"):
            assert _colour(storage / key) == ("yuv420p", "bt709", "bt709", "bt709", "tv"), key
