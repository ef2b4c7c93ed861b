"""The safe ffmpeg wrapper: argument shape, timeouts and errors."""

from __future__ import annotations

from pathlib import Path

import ffmpeg as ffmpeg_python
import pytest

from jobs import ffmpeg
from jobs.errors import PermanentJobError


def test_input_forces_demuxer_and_protocol(tmp_path: Path) -> None:
    """Inputs carry -f, -protocol_whitelist file, no drefs, and an absolute file: URL."""
    node = ffmpeg.input_stream(tmp_path / "a.mp4", "mov").output(str(tmp_path / "b.mp4"))
    args = ffmpeg_python.compile(node)
    i = args.index("-i")
    before = args[:i]
    assert before[before.index("-f") + 1] == "mov"
    assert before[before.index("-protocol_whitelist") + 1] == "file"
    assert before[before.index("-enable_drefs") + 1] == "0"
    assert args[i + 1] == "file:" + str((tmp_path / "a.mp4").resolve())


@pytest.mark.parametrize("demuxer", ["hls", "concat", "lavfi", "tee", "applehttp"])
def test_playlist_demuxers_refused(tmp_path: Path, demuxer: str) -> None:
    """Demuxers that open other files or URLs cannot be chosen."""
    with pytest.raises(PermanentJobError, match="not allowed"):
        ffmpeg.input_stream(tmp_path / "a", demuxer)
    with pytest.raises(PermanentJobError, match="not allowed"):
        ffmpeg.ffprobe(tmp_path / "a", demuxer, timeout=5)


def test_only_ffmpeg_and_ffprobe_run() -> None:
    """run_argv refuses any program other than ffmpeg or ffprobe."""
    with pytest.raises(ValueError, match="only ffmpeg and ffprobe"):
        ffmpeg.run_argv(["sh", "-c", "true"], timeout=5)


def test_timeout_kills_and_reports(tmp_path: Path) -> None:
    """An ffmpeg run over its time limit is killed and reported as a permanent error."""
    args = ["ffmpeg", "-nostdin", "-progress", "pipe:1", "-f", "lavfi", "-re", "-i",
            "sine=duration=30", "-f", "null", "-"]
    with pytest.raises(PermanentJobError, match=r"took longer than the 0\.5 s limit"):
        ffmpeg.run_argv(args, timeout=0.5, what="test encode")


def test_failure_names_ffmpeg_error(tmp_path: Path) -> None:
    """A failing ffmpeg run raises with ffmpeg's own last error line."""
    missing = ffmpeg.input_stream(tmp_path / "missing.mp4", "mov").output(str(tmp_path / "o.mp4"))
    with pytest.raises(PermanentJobError, match="No such file"):
        ffmpeg.run_ffmpeg(missing, timeout=30, what="test")


def _slow_encode_args() -> list[str]:
    """A 30-second real-time encode: long enough to be stopped or orphaned mid-way."""
    return ["ffmpeg", "-nostdin", "-progress", "pipe:1", "-f", "lavfi", "-re", "-i", "sine=duration=30",
            "-f", "null", "-"]


def test_stop_request_from_progress_ends_the_encode(tmp_path: Path) -> None:
    """A JobInterrupted raised by the progress callback ends the encode (ffmpeg is killed) instead of
    being swallowed while the 30-second encode runs on."""
    import psutil

    from jobs.errors import JobInterrupted

    calls = []

    def stop(fraction: float) -> None:
        calls.append(fraction)
        raise JobInterrupted("cancelled")

    with pytest.raises(JobInterrupted):
        ffmpeg.run_argv(_slow_encode_args(), timeout=60, duration=30, progress=stop)
    assert len(calls) == 1 and calls[0] < 0.5  # stopped at the first report, early in the encode
    assert [p for p in psutil.Process().children() if p.name() == "ffmpeg" and p.status() != psutil.STATUS_ZOMBIE] == []


def test_a_broken_progress_display_does_not_fail_the_encode() -> None:
    """Any other exception from the progress callback is ignored and the encode finishes."""
    args = ["ffmpeg", "-nostdin", "-progress", "pipe:1", "-f", "lavfi", "-i", "sine=duration=1", "-f", "null", "-"]

    def broken(_fraction: float) -> None:
        raise RuntimeError("display gone")

    ffmpeg.run_argv(args, timeout=30, duration=1, progress=broken)


def test_ffmpeg_dies_with_the_worker_that_started_it() -> None:
    """When the process running an encode is SIGKILLed, its ffmpeg child is killed too (no orphan)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    code = ("from jobs import ffmpeg; ffmpeg.run_argv(" + repr(_slow_encode_args()) + ", timeout=60)")
    worker = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 15
        kids: list[psutil.Process] = []
        while time.monotonic() < deadline and not kids:
            kids = [p for p in psutil.Process(worker.pid).children() if p.name() == "ffmpeg"]
            time.sleep(0.1)
        assert kids, "ffmpeg did not start"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        gone, alive = psutil.wait_procs(kids, timeout=5)
        assert alive == [] and gone
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_ffmpeg_starts_while_another_thread_holds_the_import_lock() -> None:
    """ffmpeg is started without running Python between fork and exec (no ``preexec_fn``), so it
    starts even while another thread is inside an import: with a ``preexec_fn`` the interpreter must
    take its import lock to fork, the start waits on that thread, and in a worker it can deadlock."""
    import _imp
    import threading

    args = ["ffmpeg", "-hide_banner", "-nostdin", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "0.1",
            "-progress", "pipe:1", "-f", "null", "-"]
    ffmpeg.run_argv(args, timeout=30)  # warm up: anything imported lazily is imported now
    done = threading.Event()
    runner = threading.Thread(target=lambda: (ffmpeg.run_argv(args, timeout=30), done.set()), daemon=True)
    _imp.acquire_lock()
    try:
        runner.start()
        finished = done.wait(20)
    finally:
        _imp.release_lock()
    runner.join(30)
    assert finished, "ffmpeg did not start while another thread held the import lock"
