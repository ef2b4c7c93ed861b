"""HLS master playlists checked against ffprobe's reading of the real segments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from jobs import JobInput, run_job
from tests import media_factories as mf

#: RFC 6381 / ISO 14496-15 profile_idc of the H.264 profiles ffprobe names.
PROFILE_IDC = {"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}
#: RFC 6381 mp4a.40.N object types of the AAC profiles ffprobe names.
AAC_OBJECT_TYPE = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True, check=True, text=True)
    return json.loads(out.stdout)


def master_entries(master: Path) -> list[tuple[dict[str, str], str]]:
    """(attributes, URI) of every EXT-X-STREAM-INF, parsed the plain way (split on commas
    outside quotes)."""
    lines = master.read_text().splitlines()
    entries = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs, key, buf, quoted = {}, "", "", False
            for ch in line.split(":", 1)[1] + ",":
                if ch == '"':
                    quoted = not quoted
                elif ch == "=" and not quoted and not key:
                    key, buf = buf, ""
                elif ch == "," and not quoted:
                    attrs[key], key, buf = buf, "", ""
                else:
                    buf += ch
            entries.append((attrs, lines[i + 1]))
    return entries


def segment_files(playlist: Path) -> list[Path]:
    return [playlist.parent / line for line in playlist.read_text().splitlines()
            if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def busy_hls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HLS of a 12 s 720p clip that is a still pattern, then heavy noise from 6 s."""
    d = tmp_path_factory.mktemp("busy")
    src = mf.complexity_change_video(d, seconds=12)
    work = d / "work"
    work.mkdir()
    run_job("transcode", JobInput(src, work, {"hls": True, "renditions": [720, 360], "preset": "ultrafast"}))
    return work / "hls" / "master.m3u8"


@pytest.mark.slow
def test_bandwidth_is_at_least_the_peak_segment_bit_rate(busy_hls: Path) -> None:
    """BANDWIDTH is at least every segment's bit rate as ffprobe measures it, and not wildly more."""
    entries = master_entries(busy_hls)
    assert len(entries) == 2
    for attrs, uri in entries:
        rates = []
        for seg in segment_files(busy_hls.parent / uri):
            seconds = float(ffprobe(seg)["format"]["duration"])
            rates.append(seg.stat().st_size * 8 / seconds)
        peak = max(rates)
        assert peak > 1.15 * min(rates), "the clip's complexity should change"
        assert peak <= int(attrs["BANDWIDTH"]) <= 1.1 * peak, (uri, attrs["BANDWIDTH"], peak)
        total_bits = sum(s.stat().st_size * 8 for s in segment_files(busy_hls.parent / uri))
        seconds = sum(float(ffprobe(s)["format"]["duration"]) for s in segment_files(busy_hls.parent / uri))
        assert int(attrs["AVERAGE-BANDWIDTH"]) == pytest.approx(total_bits / seconds, rel=0.05)
        assert int(attrs["AVERAGE-BANDWIDTH"]) < int(attrs["BANDWIDTH"])


@pytest.mark.slow
def test_codecs_resolution_and_frame_rate_match_the_segments(busy_hls: Path) -> None:
    """CODECS names the profile and level ffprobe reads from each rendition's segments;
    RESOLUTION and FRAME-RATE match the stream."""
    levels = set()
    for attrs, uri in master_entries(busy_hls):
        first = segment_files(busy_hls.parent / uri)[0]
        streams = {s["codec_type"]: s for s in ffprobe(first)["streams"]}
        video, audio = streams["video"], streams["audio"]
        avc, mp4a = attrs["CODECS"].split(",")
        assert avc[:5] == "avc1." and int(avc[5:7], 16) == PROFILE_IDC[video["profile"]]
        assert int(avc[9:11], 16) == video["level"]
        assert mp4a == f"mp4a.40.{AAC_OBJECT_TYPE[audio['profile']]}"
        assert attrs["RESOLUTION"] == f"{video['width']}x{video['height']}"
        num, den = video["avg_frame_rate"].split("/")
        assert float(attrs["FRAME-RATE"]) == pytest.approx(int(num) / int(den), abs=0.001)
        levels.add(video["level"])
    assert len(levels) == 2, "720p and 360p are encoded at different levels"


@pytest.mark.slow
def test_portrait_phone_video_renditions_and_master(tmp_path: Path, workdir: Path) -> None:
    """A 1920x1080 recording flagged as rotated 90° yields upright 1080x1920 renditions, and the
    master playlist declares them portrait."""
    src = mf.phone_video(tmp_path)
    result = run_job("transcode", JobInput(src, workdir, {"hls": True, "renditions": [1080, 480],
                                                 "preset": "ultrafast"}))
    mp4 = {o.name: o for o in result.outputs if o.name.endswith(".mp4")}
    for name, (w, h) in {"video_1080p.mp4": (1080, 1920), "video_480p.mp4": (480, 854)}.items():
        stream = next(s for s in ffprobe(mp4[name].path)["streams"] if s["codec_type"] == "video")
        assert (stream["width"], stream["height"]) == (w, h)
        assert not any("rotation" in sd for sd in stream.get("side_data_list", []))
    resolutions = {attrs["RESOLUTION"] for attrs, _ in master_entries(workdir / "hls" / "master.m3u8")}
    assert resolutions == {"1080x1920", "480x854"}


@pytest.mark.slow
def test_transcript_joins_through_a_second_master(busy_hls: Path) -> None:
    """master.m3u8 names no subtitles; master_with_transcript.m3u8 has the same variants plus a
    subtitles rendition whose one segment is the transcript job's VTT at its variant key."""
    plain = busy_hls.read_text()
    joined = (busy_hls.parent / "master_with_transcript.m3u8").read_text()
    assert "TYPE=SUBTITLES" not in plain and "SUBTITLES=" not in plain
    assert [a for a, _ in master_entries(busy_hls)] == [
        {k: v for k, v in a.items() if k != "SUBTITLES"} for a, _ in master_entries(busy_hls.parent / "master_with_transcript.m3u8")]
    assert 'TYPE=SUBTITLES,GROUP-ID="subs"' in joined and 'URI="subtitles/index.m3u8"' in joined
    media = (busy_hls.parent / "subtitles" / "index.m3u8").read_text().splitlines()
    assert "../../transcript.vtt" in media and "#EXT-X-ENDLIST" in media
    assert (busy_hls.parent / "subtitles" / "../../transcript.vtt").resolve() == busy_hls.parents[1] / "transcript.vtt"


def test_no_soundtrack_no_subtitles_master(tmp_path: Path, workdir: Path) -> None:
    """A video without a soundtrack gets no transcript job, so only master.m3u8 is written, and
    its CODECS names the video stream alone."""
    src = mf.video(tmp_path, "mute.mp4", seconds=2, audio=False)
    run_job("transcode", JobInput(src, workdir, {"hls": True, "renditions": [240], "preset": "ultrafast"}))
    assert not (workdir / "hls" / "master_with_transcript.m3u8").exists()
    (attrs, _uri), = master_entries(workdir / "hls" / "master.m3u8")
    assert attrs["CODECS"].startswith("avc1.") and "," not in attrs["CODECS"]
