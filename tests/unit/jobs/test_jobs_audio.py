"""Audio jobs: waveform, and AAC/Opus loudness-normalised to the EBU R128 target."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from jobs import JobInput, run_job


def integrated_loudness(path: Path) -> float:
    """Integrated loudness of ``path`` in LUFS, measured by ffmpeg's ebur128 filter."""
    out = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path),
                          "-af", "ebur128", "-f", "null", "-"],
                         capture_output=True, text=True, check=True, timeout=60).stderr
    summary = out[out.rindex("Summary:"):]
    return float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))


@pytest.fixture(scope="module")
def normalised(tone: Path, tmp_path_factory: pytest.TempPathFactory):
    """The transcode job run once on the quiet tone."""
    work = tmp_path_factory.mktemp("audio_transcode")
    return run_job("transcode", JobInput(tone, work))


def test_outputs_are_aac_and_opus(normalised) -> None:
    """An audio transcode writes audio.m4a (AAC) and audio.opus (Opus)."""
    by_name = {o.name: o for o in normalised.outputs}
    assert set(by_name) == {"audio.m4a", "audio.opus"}
    for name, codec in (("audio.m4a", "aac"), ("audio.opus", "opus")):
        found = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
             str(by_name[name].path)], capture_output=True, text=True, check=True).stdout.strip()
        assert found == codec


@pytest.mark.parametrize("name", ["audio.m4a", "audio.opus"])
def test_loudness_within_one_lu(normalised, name: str) -> None:
    """Each output's integrated loudness is within 1 LU of the -16 LUFS target."""
    assert normalised.data["input_loudness_lufs"] < -40  # the source really was quiet
    out = next(o for o in normalised.outputs if o.name == name)
    assert abs(integrated_loudness(out.path) - (-16.0)) <= 1.0


def test_custom_loudness_target(tone: Path, workdir: Path) -> None:
    """loudness_lufs=-23 (EBU R128 broadcast) is honoured within 1 LU."""
    result = run_job("transcode", JobInput(tone, workdir, {"loudness_lufs": -23}))
    m4a = next(o for o in result.outputs if o.name == "audio.m4a")
    assert abs(integrated_loudness(m4a.path) - (-23.0)) <= 1.0


def test_waveform(tone: Path, workdir: Path) -> None:
    """An audio thumbnail is a peaks JSON (louder in the middle third) and a PNG."""
    result = run_job("thumbnail", JobInput(tone, workdir))
    by_name = {o.name: o for o in result.outputs}
    assert set(by_name) == {"waveform.json", "waveform.png"}
    doc = json.loads(by_name["waveform.json"].path.read_text())
    assert doc["bits"] == 8 and len(doc["data"]) == 2 * doc["length"] == 2000
    maxima = doc["data"][1::2]
    third = len(maxima) // 3
    assert max(maxima[third:2 * third]) > 2 * max(maxima[:third // 2])
    with Image.open(by_name["waveform.png"].path) as im:
        assert im.size == (1800, 280) and im.format == "PNG"
    assert not list(workdir.glob("_*"))  # the raw samples are gone


def test_silent_recording_is_transcoded_as_it_is(tmp_path: Path) -> None:
    """A recording of silence gets both outputs, unnormalised and as long as the source (it
    failed with "the audio is silent" before); ffprobe reads each."""
    from tests import media_factories as mf

    src = mf.silent_audio(tmp_path, "quiet.m4a", seconds=5)
    work = tmp_path / "work"
    work.mkdir()
    result = run_job("transcode", JobInput(src, work))
    assert result.data["audio_normalised"] is False and result.data["input_loudness_lufs"] is None
    for out in result.outputs:
        probed = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:format=duration",
             "-of", "json", str(out.path)], capture_output=True, text=True, check=True).stdout)
        assert [s["codec_type"] for s in probed["streams"]] == ["audio"]
        assert abs(float(probed["format"]["duration"]) - 5.0) < 0.2, (out.name, probed)
