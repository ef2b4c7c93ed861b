"""A stop reaches ffmpeg even when it reports no progress: the process is killed and the run interrupted."""

from __future__ import annotations

import threading

import pytest

from jobs import ffmpeg
from jobs.errors import JobInterrupted
from jobs.stopping import StopSignal, bound
from tests.processes import children_named


def _ffmpeg_children() -> list[int]:
    return children_named("ffmpeg")


def _silent_encode() -> list[str]:
    """A minute of real-time encoding that prints no out_time progress the callback would see."""
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-progress", "pipe:1", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=60", "-f", "null", "-"]


def test_a_stop_kills_an_ffmpeg_that_reports_no_progress() -> None:
    """Without a duration ffmpeg's progress never reaches the callback; the stop kills it anyway."""
    signal = StopSignal()
    reports: list[float] = []
    seen: list[list[int]] = []

    def stop_once_running() -> None:
        for _ in range(400):  # bounded: 20 s at most
            if children := _ffmpeg_children():
                seen.append(children)
                break
            threading.Event().wait(0.05)
        signal.stop("lease lost")

    stopper = threading.Thread(target=stop_once_running)
    stopper.start()
    with bound(signal), pytest.raises(JobInterrupted, match="stopped: lease lost"):
        ffmpeg.run_argv(_silent_encode(), timeout=120, progress=reports.append)
    stopper.join()
    assert seen, "ffmpeg was running when the stop came"
    assert reports == []
    assert not set(seen[0]) & set(_ffmpeg_children()), "the ffmpeg process is gone"


def test_a_signal_stopped_before_the_start_kills_at_once() -> None:
    """An ffmpeg started after the stop is killed as soon as it is registered."""
    signal = StopSignal()
    signal.stop("cancelled")
    with bound(signal), pytest.raises(JobInterrupted, match="cancelled"):
        ffmpeg.run_argv(_silent_encode(), timeout=120)


def test_without_a_bound_signal_runs_are_unaffected() -> None:
    """Outside a worker (no signal bound) run_argv behaves as before."""
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-progress", "pipe:1",
            "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5:duration=0.4", "-f", "null", "-"]
    ffmpeg.run_argv(args, timeout=60)
