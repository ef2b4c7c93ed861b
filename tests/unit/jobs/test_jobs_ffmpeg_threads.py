"""The thread budget reaches the real ffmpeg: its own report of each command line (FFREPORT), and
the encoders' own records in the files they write (x264's and x265's settings SEI)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from jobs import ffmpeg
from jobs.job_input import JobInput
from jobs.limits import MediaLimits
from jobs.registry import run_job
from tests import media_factories as mf

pytestmark = pytest.mark.slow


def _reports(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """Make every ffmpeg started from now on write its report (with its command line) into ``folder``."""
    folder.mkdir()
    monkeypatch.setenv("FFREPORT", f"file={folder}/%p-%t.log:level=32")
    return folder


def _command_lines(folder: Path) -> list[list[str]]:
    """The command line each ffmpeg reported, as it parsed it."""
    lines = []
    for report in sorted(folder.glob("*.log")):
        text = report.read_text(errors="replace").splitlines()
        lines.append(shlex.split(text[text.index("Command line:") + 1]))
    return lines


def _encode_of(lines: list[list[str]], codec: str) -> list[str]:
    (argv,) = [a for a in lines if codec in a]
    return argv


def _encoder_setting(path: Path, encoder: bytes, name: str) -> int:
    """A setting the encoder wrote into its stream (x264: ``threads=3``, x265: ``numa-pools=2``)."""
    data = path.read_bytes()
    start = data.index(encoder)
    found = re.search(rb"[ :]" + name.encode() + rb"=(\d+)", data[start:start + 4000])
    assert found, (encoder, name)
    return int(found[1])


def test_transcode_runs_ffmpeg_and_x264_within_the_budget(clip: Path, workdir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With ffmpeg_threads=2, the transcode's ffmpeg gets -threads 2 for its decoder and each
    encoder, 2 filter threads, and x264 records threads=2 in every rendition."""
    reports = _reports(monkeypatch, tmp_path / "reports")
    result = run_job("transcode", JobInput(clip, workdir, {"renditions": [240, 144]}, MediaLimits(ffmpeg_threads=2)))
    argv = _encode_of(_command_lines(reports), "libx264")
    assert argv[1:5] == ["-filter_threads", "2", "-filter_complex_threads", "2"]
    assert argv[argv.index("-i") - 2:argv.index("-i")] == ["-threads", "2"]
    renditions = [o.path for o in result.outputs]
    assert len(renditions) == 2
    for path in renditions:
        assert argv[argv.index(str(path)) - 2:argv.index(str(path))] == ["-threads", "2"]
        assert _encoder_setting(path, b"x264 - core", "threads") == 2


def test_without_a_budget_ffmpeg_chooses_its_own_threads(clip: Path, workdir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """ffmpeg_threads=0 passes no thread option, and x264 picks its own count (1.5 per core), which
    is why the budget matters: the test above would see this count without it."""
    reports = _reports(monkeypatch, tmp_path / "reports")
    result = run_job("transcode", JobInput(clip, workdir, {"renditions": [240]}, MediaLimits()))
    argv = _encode_of(_command_lines(reports), "libx264")
    assert not {"-threads", "-filter_threads", "-filter_complex_threads"} & set(argv)
    assert _encoder_setting(result.outputs[0].path, b"x264 - core", "threads") != 2


def test_hdr_rendition_gives_x265_its_thread_pool(tmp_path: Path, workdir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """x265 keeps its own thread pool that -threads does not size: pools=N goes into -x265-params,
    and x265 records numa-pools=1 in the HDR rendition."""
    source = mf.hdr_video(tmp_path, seconds=0.4, size=(320, 180))
    reports = _reports(monkeypatch, tmp_path / "reports")
    result = run_job("transcode", JobInput(source, workdir, {"renditions": [144], "hdr": "keep"}, MediaLimits(ffmpeg_threads=1)))
    argv = _encode_of(_command_lines(reports), "libx265")
    assert argv[argv.index("-x265-params") + 1].endswith(":pools=1")
    hdr = next(o.path for o in result.outputs if o.name.endswith("_hdr.mp4"))
    assert _encoder_setting(hdr, b"x265 (build", "numa-pools") == 1


def test_animation_encode_budgets_both_outputs(tmp_path: Path, workdir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand-built animation command (stdin frames, MP4 and WebM) gets -threads before both
    outputs, and x264 records it."""
    gif = mf.animated_gif(tmp_path)
    reports = _reports(monkeypatch, tmp_path / "reports")
    result = run_job("thumbnail", JobInput(gif, workdir, {}, MediaLimits(ffmpeg_threads=1)))
    argv = _encode_of(_command_lines(reports), "libvpx-vp9")
    outputs = {o.name: o.path for o in result.outputs if o.name.startswith("animation.")}
    for path in outputs.values():
        assert argv[argv.index(str(path)) - 2:argv.index(str(path))] == ["-threads", "1"]
    assert _encoder_setting(outputs["animation.mp4"], b"x264 - core", "threads") == 1


def test_budget_options_go_before_inputs_and_outputs_only() -> None:
    """with_thread_budget adds global filter threads, -threads before each -i and each named
    output, pools to x265's own parameters, and leaves option values that look like files alone."""
    argv = ["ffmpeg", "-progress", "pipe:1", "-i", "file:/in.mov", "-c:v", "libx265",
            "-x265-params", "crf=24", "/out/a.mp4", "-i", "file:/b.wav", "-f", "null", "/out/b.wav"]
    got = ffmpeg.with_thread_budget(argv, ["/out/a.mp4", "/out/b.wav"], 3)
    assert got == ["ffmpeg", "-filter_threads", "3", "-filter_complex_threads", "3",
                   "-progress", "pipe:1", "-threads", "3", "-i", "file:/in.mov", "-c:v", "libx265",
                   "-x265-params", "crf=24:pools=3", "-threads", "3", "/out/a.mp4",
                   "-threads", "3", "-i", "file:/b.wav", "-f", "null", "-threads", "3", "/out/b.wav"]
    assert ffmpeg.with_thread_budget(argv, ["/out/a.mp4"], 0) == argv


def test_each_thread_has_its_own_budget() -> None:
    """The budget is per job: a block sets it for the thread running the job and restores it after."""
    import threading

    seen: dict[str, int] = {}
    with ffmpeg.thread_budget(4):
        other = threading.Thread(target=lambda: seen.setdefault("other", ffmpeg._THREADS.get()))
        other.start()
        other.join()
        seen["inside"] = ffmpeg._THREADS.get()
    seen["after"] = ffmpeg._THREADS.get()
    assert seen == {"other": 0, "inside": 4, "after": 0}


def test_the_workers_entry_point_applies_the_budget_too(clip: Path, workdir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker runs a job through its JobSpec (``job_spec(type).run``), not ``run_job``: the
    budget must reach ffmpeg on that path as well (it did not when only run_job applied it)."""
    from jobs.registry import job_spec

    reports = _reports(monkeypatch, tmp_path / "reports")
    result = job_spec("transcode").run(JobInput(clip, workdir, {"renditions": [144]}, MediaLimits(ffmpeg_threads=1)))
    argv = _encode_of(_command_lines(reports), "libx264")
    assert argv[argv.index("-i") - 2:argv.index("-i")] == ["-threads", "1"]
    assert _encoder_setting(result.outputs[0].path, b"x264 - core", "threads") == 1
