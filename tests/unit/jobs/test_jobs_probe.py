"""Sniffing, probing and the refusal of hostile and broken files by every job type."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import JobInput, probe, run_job
from jobs.errors import PermanentJobError
from jobs.limits import MediaLimits
from tests import media_factories as mf


@pytest.mark.parametrize(
    ("maker", "mime", "kind"),
    [
        (lambda d: mf.image(d, "a.jpg"), "image/jpeg", "image"),
        (lambda d: mf.image(d, "a.png", fmt="PNG"), "image/png", "image"),
        (lambda d: mf.image(d, "a.webp", fmt="WEBP"), "image/webp", "image"),
        (lambda d: mf.animated_gif(d), "image/gif", "image"),
        (lambda d: mf.text_named_mp4(d), "text/plain", "document"),
        (lambda d: mf.hls_playlist(d), "application/vnd.apple.mpegurl", "other"),
        (lambda d: mf.mislabelled(mf.image(d, "b.jpg"), "song.mp3"), "image/jpeg", "image"),
    ],
)
def test_sniff_names_the_format_from_content(tmp_path: Path, maker, mime: str, kind: str) -> None:
    """sniff() reports the MIME type and kind the bytes say, whatever the file is called."""
    found = probe.sniff(maker(tmp_path))
    assert (found.mime, found.kind) == (mime, kind)


def test_sniff_media_files(clip: Path, tone: Path) -> None:
    """An MP4 is video with the mov demuxer; an MP3 is audio with the mp3 demuxer."""
    assert probe.sniff(clip) == probe.Sniffed("video/mp4", "video", "mov")
    assert probe.sniff(tone) == probe.Sniffed("audio/mpeg", "audio", "mp3")


def test_sniff_bytes_other_signatures() -> None:
    """PDF, ZIP, FLAC, WAV and unknown binary are told apart from their first bytes."""
    assert probe.sniff_bytes(b"%PDF-1.7\n").kind == "document"
    assert probe.sniff_bytes(b"PK\x03\x04rest").kind == "archive"
    assert probe.sniff_bytes(b"fLaC\x00\x00").decoder == "flac"
    assert probe.sniff_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ").decoder == "wav"
    assert probe.sniff_bytes(b"\x00\x01\x02\x03\xff\xfe").mime == "application/octet-stream"


def test_probe_media_refines_sound_only_mp4_to_audio(media: Path, limits: MediaLimits) -> None:
    """An MP4 holding only an audio stream is probed as audio."""
    path = media / "sound_only.m4v"
    import subprocess

    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=duration=1", "-c:a", "aac", "-f", "mp4", str(path)], check=True)
    info = probe.probe_media(path, limits)
    assert info.kind == "audio" and info.video is None and info.audio["codec"] == "aac"


def test_probe_media_duration_limit(clip: Path) -> None:
    """A video longer than max_duration_seconds is refused with both numbers in the message."""
    with pytest.raises(PermanentJobError, match=r"media is 4 s long, above the 2 s limit"):
        probe.probe_media(clip, MediaLimits(max_duration_seconds=2))


def test_probe_media_dimension_limit(clip: Path) -> None:
    """A video wider than max_video_dimension is refused."""
    with pytest.raises(PermanentJobError, match=r"video is 320x240 pixels, above the 200 pixel"):
        probe.probe_media(clip, MediaLimits(max_video_dimension=200))


def test_source_size_limit(clip: Path) -> None:
    """A source above max_source_bytes is refused before it is read."""
    with pytest.raises(PermanentJobError, match=r"above the 1000 byte limit"):
        run_job("metadata", JobInput(clip, clip.parent, limits=MediaLimits(max_source_bytes=1000)))


def test_open_image_refuses_bomb_before_pillow_sees_it(tmp_path: Path,
                                                         limits: MediaLimits) -> None:
    """A 30000x30000 PNG is refused from its header with the imgproxy-style message."""
    bomb = mf.png_bomb(tmp_path)
    with pytest.raises(PermanentJobError) as caught, probe.open_image(bomb, limits):
        pass
    assert str(caught.value) == "image is 30000x30000 pixels, above the 50 MP limit"


def test_pixel_limit_is_ours_not_pillows_global(tmp_path: Path) -> None:
    """The limit comes from MediaLimits: a 100x100 image fails under a 5,000-pixel limit."""
    small = mf.image(tmp_path, size=(100, 100))
    with (pytest.raises(PermanentJobError, match=r"image is 100x100 pixels, above the 0\.005 MP"),
          probe.open_image(small, MediaLimits(max_image_pixels=5000))):
        pass


def test_animation_frame_limit(tmp_path: Path) -> None:
    """An animated GIF with more frames than allowed is refused."""
    gif = mf.animated_gif(tmp_path, frames=6)
    with (pytest.raises(PermanentJobError, match=r"image has 6 frames, above the 5 frame limit"),
          probe.open_image(gif, MediaLimits(max_animation_frames=5))):
        pass


HOSTILE = {
    "png bomb": (lambda d: mf.png_bomb(d), "above the 50 MP limit"),
    "huge jpeg header": (lambda d: mf.jpeg_huge_header(d), "60000x60000 pixels"),
    "corrupt jpeg": (lambda d: mf.corrupt_jpeg(d), "JPEG"),
    "truncated png": (lambda d: mf.truncated(mf.image(d, "t.png", fmt="PNG")), "truncated"),
    "truncated mp4": (lambda d: mf.truncated(mf.video(d, "t.mp4", seconds=1)), "could not"),
    "text named mp4": (lambda d: mf.text_named_mp4(d), "text/plain"),
    "hls playlist named mp4": (lambda d: mf.hls_playlist(d), "mpegurl"),
    "concat list named mp4": (lambda d: mf.concat_list(d), "text/plain"),
    "avi wrapping a playlist": (lambda d: mf.avi_with_m3u8_inside(d), "no audio or video stream"),
    "empty file": (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "empty"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("job_type", ["metadata", "thumbnail", "transcode", "transcript",
                                      "optimize"])
def test_hostile_file_fails_cleanly(tmp_path: Path, name: str, job_type: str) -> None:
    """Every hostile or broken file fails every job type with a readable permanent error."""
    maker, _ = HOSTILE[name]
    source = maker(tmp_path)
    kind = probe.sniff(source).kind
    work = tmp_path / "work"
    work.mkdir()
    if job_type == "metadata" and kind in ("document", "other") and name != "empty file":
        # Text and playlists are valid documents to describe: never decoded, only hashed.
        result = run_job(job_type, JobInput(source, work))
        assert result.data["kind"] == kind and not list(work.iterdir())
        return
    with pytest.raises(PermanentJobError) as caught:
        run_job(job_type, JobInput(source, work))
    message = str(caught.value)
    assert message and "Traceback" not in message and len(message) < 400


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_message_names_the_problem(tmp_path: Path, name: str) -> None:
    """The thumbnail or transcode error message says what was wrong with the file."""
    maker, expected = HOSTILE[name]
    source = maker(tmp_path)
    job = "thumbnail" if probe.sniff(source).kind == "image" else "transcode"
    with pytest.raises(PermanentJobError, match=expected):
        run_job(job, JobInput(source, tmp_path))


def test_playlist_never_reads_the_file_it_names(tmp_path: Path) -> None:
    """A playlist pointing at a local file produces no output carrying that file's content."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n" * 50)
    for maker in (mf.hls_playlist, mf.concat_list):
        evil = maker(tmp_path, target=str(secret))
        work = tmp_path / f"work_{maker.__name__}"
        work.mkdir()
        with pytest.raises(PermanentJobError):
            run_job("transcode", JobInput(evil, work))
        assert not any(b"TOP-SECRET" in p.read_bytes() for p in work.rglob("*") if p.is_file())
