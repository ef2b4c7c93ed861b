"""Video jobs: poster frame, storyboard, MP4 renditions and HLS, with real ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from jobs import JobInput, run_job
from tests import media_factories as mf


def _height(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=height",
         "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.fixture(scope="module")
def thumbs(clip: Path, tmp_path_factory: pytest.TempPathFactory):
    """The thumbnail job run once on the clip that starts black."""
    work = tmp_path_factory.mktemp("video_thumbs")
    return run_job("thumbnail", JobInput(clip, work))


def test_poster_not_black(thumbs) -> None:
    """The poster is taken after the black opening and is not dark."""
    assert thumbs.data["poster_time"] >= 1.5
    poster = next(o for o in thumbs.outputs if o.name == "poster_320.jpg")
    with Image.open(poster.path) as im:
        assert ImageStat.Stat(im.convert("L")).mean[0] > 40


def test_poster_ladder(thumbs) -> None:
    """A 320x240 video gets posters at 320 and 160 in WebP, AVIF and JPEG, and placeholders."""
    names = {o.name for o in thumbs.outputs}
    assert {f"poster_{w}.{e}" for w in (160, 320) for e in ("webp", "avif", "jpg")} <= names
    assert "poster_640.webp" not in names
    assert thumbs.data["blurhash"] and thumbs.data["dominant_color"].startswith("#")


def test_storyboard_sprite_and_vtt(thumbs) -> None:
    """The storyboard has one 160 px tile per second and a VTT cue pointing at each tile."""
    sprite = next(o for o in thumbs.outputs if o.name == "storyboard.jpg")
    vtt = next(o for o in thumbs.outputs if o.name == "storyboard.vtt")
    assert sprite.extra["tiles"] == 4 and sprite.width == 4 * 160 and sprite.height == 120
    text = vtt.path.read_text()
    assert text.startswith("WEBVTT")
    assert "00:00:03.000 --> 00:00:04.000\nstoryboard.jpg#xywh=480,0,160,120" in text


def test_transcode_renditions_never_above_source(tmp_path: Path, workdir: Path,
                                                  progress) -> None:
    """A 640x480 source gets only a 480p rendition (1080p and 720p would be upscales)."""
    src = mf.video(tmp_path, "vga.mp4", size=(640, 480), seconds=2)
    result = run_job("transcode", JobInput(src, workdir, progress=progress))
    assert [o.name for o in result.outputs] == ["video_480p.mp4"]
    out = result.outputs[0]
    assert (out.width, out.height) == (640, 480) and _height(out.path) == 480
    assert result.data["renditions"] == ["480p"]


def test_faststart_and_codecs(clip: Path, workdir: Path) -> None:
    """Renditions are H.264 + AAC with the moov atom before mdat (+faststart)."""
    result = run_job("transcode", JobInput(clip, workdir))
    path = result.outputs[0].path
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    codecs = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
         str(path)], capture_output=True, text=True, check=True).stdout.split()
    assert codecs == ["h264", "aac"]


def test_progress_from_ffmpeg(clip: Path, workdir: Path, progress) -> None:
    """Progress climbs through fractions reported by ffmpeg's -progress output and ends at 1."""
    run_job("transcode", JobInput(clip, workdir, progress=progress))
    assert progress.values[-1] == 1.0
    assert any(0 < v < 1 for v in progress.values)
    assert progress.values == sorted(progress.values)


def test_hls_ladder(clip: Path, workdir: Path) -> None:
    """With hls=true a master playlist lists every rendition's playlist and segments exist."""
    result = run_job("transcode", JobInput(clip, workdir, {"hls": True}))
    names = [o.name for o in result.outputs]
    assert "hls/master.m3u8" in names and "hls/240p/index.m3u8" in names
    assert any(n.startswith("hls/240p/seg_") and n.endswith(".ts") for n in names)
    master = (workdir / "hls" / "master.m3u8").read_text()
    assert master.startswith("#EXTM3U") and "RESOLUTION=320x240" in master
    assert "240p/index.m3u8" in master
    assert "#EXT-X-ENDLIST" in (workdir / "hls" / "240p" / "index.m3u8").read_text()


@pytest.mark.slow
def test_1080p_default_ladder(tmp_path: Path, workdir: Path) -> None:
    """A short 1080p clip gets the full default ladder: 1080p, 720p and 480p."""
    src = mf.video(tmp_path, "hd.mp4", size=(1920, 1080), seconds=1, rate=10)
    result = run_job("transcode", JobInput(src, workdir, {"preset": "ultrafast"}))
    heights = {o.name: _height(o.path) for o in result.outputs}
    assert heights == {"video_1080p.mp4": 1080, "video_720p.mp4": 720, "video_480p.mp4": 480}
    widths = {o.name: o.width for o in result.outputs}
    assert widths == {"video_1080p.mp4": 1920, "video_720p.mp4": 1280, "video_480p.mp4": 854}


def test_soundtrack_loudness_normalised_in_every_rendition(tmp_path: Path, workdir: Path) -> None:
    """A quiet soundtrack (about -43 LUFS) comes out of every rendition within 1 LU of -16 LUFS."""
    from tests.unit.jobs.test_jobs_audio import integrated_loudness

    src = mf.video(tmp_path, "quiet.mp4", size=(320, 240), seconds=4, tone_db=-40)
    assert integrated_loudness(src) < -35
    result = run_job("transcode", JobInput(src, workdir, {"renditions": [240, 144]}))
    assert [o.name for o in result.outputs] == ["video_240p.mp4", "video_144p.mp4"]
    assert result.data["audio_normalised"] is True and result.data["input_loudness_lufs"] < -35
    for out in result.outputs:
        assert abs(integrated_loudness(out.path) - (-16.0)) <= 1.0, out.name


def test_soundtrack_normalisation_can_be_turned_off(tmp_path: Path, workdir: Path) -> None:
    """normalize_audio=false keeps the soundtrack's loudness; a non-boolean value is refused."""
    from jobs.errors import PermanentJobError
    from tests.unit.jobs.test_jobs_audio import integrated_loudness

    src = mf.video(tmp_path, "quiet.mp4", size=(320, 240), seconds=4, tone_db=-40)
    result = run_job("transcode", JobInput(src, workdir, {"normalize_audio": False}))
    assert result.data["audio_normalised"] is False
    assert abs(integrated_loudness(result.outputs[0].path) - integrated_loudness(src)) <= 1.0
    with pytest.raises(PermanentJobError, match="normalize_audio must be true or false"):
        run_job("transcode", JobInput(src, workdir, {"normalize_audio": "yes"}))


def test_silent_soundtrack_is_kept_not_failed(tmp_path: Path, workdir: Path) -> None:
    """A video whose soundtrack is digital silence is transcoded; there is nothing to normalise."""
    src = mf.video(tmp_path, "silent.mp4", size=(320, 240), seconds=2, tone_db=-200)
    result = run_job("transcode", JobInput(src, workdir))
    assert result.data["audio_normalised"] is False and result.data["input_loudness_lufs"] is None
    assert result.outputs[0].path.stat().st_size > 0


def test_portrait_phone_video_posters_reach_its_width(tmp_path: Path, workdir: Path) -> None:
    """A portrait phone recording (1920x1080 flagged as rotated 90°) gets upright posters whose
    top variant is its full 1080 px width, between the 640 and 1280 steps."""
    src = mf.phone_video(tmp_path)
    result = run_job("thumbnail", JobInput(src, workdir, {"formats": ["jpeg"], "storyboard": False}))
    assert sorted(o.width for o in result.outputs) == [160, 320, 640, 1080]
    top = next(o for o in result.outputs if o.name == "poster_1080.jpg")
    with Image.open(top.path) as im:
        assert im.size == (1080, 1920)
