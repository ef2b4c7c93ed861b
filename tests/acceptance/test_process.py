"""The README's first command, for real: `contentforge process` in a subprocess with embedded
PostgreSQL and Redis (no DATABASE_URL, REDIS_URL or STORAGE_URL), on generated sample media."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "STORAGE_URL") and not k.startswith("CONTENTFORGE_")}
    env["CONTENTFORGE_DATA_DIR"] = str(tmp_path / "data")
    return env


def _process(tmp_path: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "process", *args], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_process_samples_end_to_end_then_reuse(tmp_path: Path) -> None:
    """Samples are processed on embedded services into real files; a second run reuses the data."""
    first = _process(tmp_path, "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(first.stdout)
    by_kind = {a["kind"]: a for a in report["assets"]}
    assert set(by_kind) == {"image", "video", "audio"}
    assert all(a["status"] == "ready" for a in report["assets"])
    storage = Path(report["assets"][0]["storage"])
    for a in report["assets"]:
        assert a["files"] and all((storage / key).is_file() for key in a["files"])
    assert {"video_720p.mp4", "video_480p.mp4"} <= set(by_kind["video"]["renditions"])
    assert {"audio.m4a", "audio.opus"} <= set(by_kind["audio"]["renditions"])
    assert "welcome" in by_kind["video"]["transcript"].lower()
    assert any(k.endswith("thumb_160.webp") for k in by_kind["image"]["files"])
    # Everything started was stopped: no embedded PostgreSQL left running on the data folder.
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()

    second = _process(tmp_path, "--json", timeout=120)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout)
    assert [a["asset_id"] for a in again["assets"]] == [a["asset_id"] for a in report["assets"]]


def test_process_table_output(tmp_path: Path) -> None:
    """A person sees a table with the file, its status and where the files are."""
    from PIL import Image

    img = tmp_path / "pic.png"
    Image.new("RGB", (400, 300), (10, 120, 200)).save(img)
    r = _process(tmp_path, str(img))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "pic.png" in r.stdout and "ready" in r.stdout and "Files are under" in r.stdout


def test_process_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist gives exit 2 and a one-line reason, not a traceback."""
    r = _process(tmp_path, "nope.mp4", timeout=60)
    assert r.returncode == 2
    assert "nope.mp4: no such file" in r.stderr and "Traceback" not in r.stderr


def test_process_hostile_file_fails_its_asset_readably(tmp_path: Path) -> None:
    """A text file named .mp4 is processed as what it is; a PNG bomb fails with a readable reason."""
    bomb = tmp_path / "bomb.png"
    from tests.media_factories import png_bomb

    png_bomb(tmp_path, "bomb.png")
    r = _process(tmp_path, "--json", str(bomb), timeout=300)
    assert r.returncode == 1, r.stderr[-3000:]
    asset = json.loads(r.stdout)["assets"][0]
    assert asset["status"] == "failed"
    assert "pixels" in asset["error"] and "limit" in asset["error"]


@pytest.mark.slow
def test_process_animated_gif_ends_ready_with_videos(tmp_path: Path) -> None:
    """An animated GIF passed to the README's first command ends ready with a playable MP4 and
    WebM stored next to its image variants (ffprobe reads them)."""
    from tests.media_factories import screen_gif

    gif = screen_gif(tmp_path, "loop.gif")
    r = _process(tmp_path, "--json", str(gif), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    asset = json.loads(r.stdout)["assets"][0]
    assert asset["status"] == "ready" and "animation.mp4" in asset["renditions"]
    storage = Path(asset["storage"])
    stored = {Path(key).name: storage / key for key in asset["files"]}
    for name, codec in (("animation.mp4", "h264"), ("animation.webm", "vp9")):
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                              "-of", "csv=p=0", str(stored[name])], capture_output=True, text=True)
        assert out.stdout.strip() == codec, name


@pytest.mark.slow
def test_process_silent_media_ends_ready(tmp_path: Path) -> None:
    """A screen recording with no soundtrack and a recording of silence both end ready, exit 0
    (the video failed its transcript before, and the command exited 1)."""
    from tests.media_factories import silent_audio, video

    mute = video(tmp_path, "screen.mp4", seconds=2, audio=False)
    quiet = silent_audio(tmp_path, "quiet.m4a", seconds=5)
    r = _process(tmp_path, "--json", str(mute), str(quiet), timeout=600)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assets = json.loads(r.stdout)["assets"]
    assert [(a["file"], a["status"], a["error"]) for a in assets] == [
        ("screen.mp4", "ready", None), ("quiet.m4a", "ready", None)]
    assert all(a["transcript"] == "" for a in assets)
    storage = Path(assets[0]["storage"])
    for a in assets:
        doc = json.loads((storage / next(k for k in a["files"] if k.endswith("transcript.json"))).read_text())
        assert doc["has_speech"] is False and doc["segments"] == []
