"""Animated images become video that plays: checked with ffprobe and Pillow, not our own code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from jobs import JobInput, run_job
from jobs.errors import PermanentJobError
from jobs.limits import MediaLimits
from tests import media_factories as mf


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_format", "-show_streams", "-of", "json",
         str(path)], capture_output=True, check=True, text=True)
    return json.loads(out.stdout)


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box order as ffmpeg's own mov demuxer logs it while parsing."""
    log = subprocess.run(["ffprobe", "-v", "trace", str(path)], capture_output=True, text=True).stderr
    return [line.split("type:'")[1][:4] for line in log.splitlines() if "parent:'root'" in line]


@pytest.fixture(scope="module")
def gif_result(tmp_path_factory: pytest.TempPathFactory):
    """The thumbnail job run once on a 321x181 screen-capture GIF of 24 frames at 100 ms, whose
    first three frames are black."""
    d = tmp_path_factory.mktemp("gif")
    src = mf.screen_gif(d)
    work = d / "work"
    work.mkdir()
    return src, run_job("thumbnail", JobInput(src, work))


def test_gif_gets_a_muted_faststart_h264_mp4(gif_result) -> None:
    """animation.mp4 is H.264 yuv420p at even dimensions, no audio, moov before mdat, and lasts
    as long as the GIF plays (24 × 100 ms)."""
    _src, result = gif_result
    mp4 = next(o for o in result.outputs if o.name == "animation.mp4")
    info = ffprobe(mp4.path)
    assert [s["codec_type"] for s in info["streams"]] == ["video"]
    video = info["streams"][0]
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert (video["width"], video["height"]) == (320, 180) == (mp4.width, mp4.height)
    assert float(info["format"]["duration"]) == pytest.approx(2.4, abs=0.05)
    boxes = top_level_boxes(mp4.path)
    assert boxes.index("moov") < boxes.index("mdat")


def test_gif_gets_a_smaller_vp9_webm(gif_result) -> None:
    """animation.webm is VP9 with no audio, the same duration, and smaller than the GIF and MP4."""
    src, result = gif_result
    by_name = {o.name: o for o in result.outputs}
    info = ffprobe(by_name["animation.webm"].path)
    assert [s["codec_name"] for s in info["streams"]] == ["vp9"]
    assert int(info["streams"][0]["nb_read_frames"]) == 24
    assert float(info["format"]["duration"]) == pytest.approx(2.4, abs=0.05)
    assert by_name["animation.webm"].bytes < by_name["animation.mp4"].bytes < src.stat().st_size


def test_size_ratio_to_the_gif_is_recorded(gif_result) -> None:
    """The result records frames, duration and each video's size as a fraction of the GIF's."""
    src, result = gif_result
    anim = result.data["animation"]
    mp4 = next(o for o in result.outputs if o.name == "animation.mp4")
    assert anim["frames"] >= 22 and anim["duration"] == pytest.approx(2.4)
    assert anim["mp4_ratio_to_source"] == pytest.approx(mp4.bytes / src.stat().st_size, abs=1e-4)


def test_poster_is_the_first_frame_that_is_not_blank(gif_result) -> None:
    """The image variants show the first non-black frame, not the black opening."""
    _src, result = gif_result
    assert result.data["poster_frame"] >= 1
    thumb = next(o for o in result.outputs if o.name == "thumb_321.jpg")
    with Image.open(thumb.path) as im:
        assert ImageStat.Stat(im.convert("L")).mean[0] > 60


def test_animated_webp_and_apng_play_too(tmp_path: Path, workdir: Path) -> None:
    """An animated WebP (which ffmpeg cannot decode) and an APNG also get both videos."""
    webp = mf.animated_webp(tmp_path)
    apng = tmp_path / "anim.png"
    with Image.open(mf.screen_gif(tmp_path, frames=6, blank_frames=0)) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(im.convert("RGBA"))
    frames[0].save(apng, save_all=True, append_images=frames[1:], duration=50, loop=0)
    for src, seconds in ((webp, 12 * 0.08), (apng, 6 * 0.05)):
        out = workdir / src.suffix[1:]
        out.mkdir()
        result = run_job("thumbnail", JobInput(src, out, {"formats": ["webp"]}))
        names = {o.name: o for o in result.outputs}
        for name in ("animation.mp4", "animation.webm"):
            info = ffprobe(names[name].path)
            assert float(info["format"]["duration"]) == pytest.approx(seconds, abs=0.05), (src, name)


def test_still_image_gets_no_video(tmp_path: Path, workdir: Path) -> None:
    """A still image gets image variants only."""
    result = run_job("thumbnail", JobInput(mf.image(tmp_path, size=(300, 200)), workdir))
    assert not any(o.name.startswith("animation.") for o in result.outputs)
    assert "animation" not in result.data


def test_animation_longer_than_the_duration_limit_is_refused(tmp_path: Path, workdir: Path) -> None:
    """An animation playing longer than max_duration_seconds fails with a readable error."""
    src = mf.screen_gif(tmp_path, frames=4, frame_ms=2000, blank_frames=0)
    with pytest.raises(PermanentJobError, match="animation lasts 8 s, above the 5 s limit"):
        run_job("thumbnail", JobInput(src, workdir, limits=MediaLimits(max_duration_seconds=5)))


def test_gif_made_by_ffmpeg_keeps_its_duration(tmp_path: Path, workdir: Path) -> None:
    """A 15 fps clip turned into a GIF by ffmpeg (frames stored at 60 and 70 ms) plays as long as
    ffprobe says the GIF does, in both videos."""
    gif = tmp_path / "clip.gif"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=15:duration=3", "-loop", "0", str(gif)], check=True)
    expected = float(ffprobe(gif)["format"]["duration"])
    result = run_job("thumbnail", JobInput(gif, workdir, {"formats": ["webp"]}))
    for out in result.outputs:
        if out.name.startswith("animation."):
            assert float(ffprobe(out.path)["format"]["duration"]) == pytest.approx(expected, abs=0.02), out.name
