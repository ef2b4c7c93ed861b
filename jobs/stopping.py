"""How a request to stop a job reaches the processes it runs, even when the job reports nothing.

A job notices a stop when it reports progress (the worker's progress callback raises). An ffmpeg
that reports nothing for a while (a slow filter graph, a stalled input, a first pass that prints no
``out_time``) would run on. So the worker binds a :class:`StopSignal` to the job's thread
(:func:`bound`) and :func:`jobs.ffmpeg.run_argv` registers each process it starts with it
(:func:`kill_on_stop`): stopping the signal, from any thread, kills them at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar


class StopSignal:
    """Set once, from any thread, when a job must stop; calls the kill functions registered with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kills: list[Callable[[], object]] = []
        self.reason: str | None = None

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def stop(self, reason: str) -> None:
        """Mark the job stopped (the first reason wins) and kill every registered process now."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            kills = list(self._kills)
        for kill in kills:
            with contextlib.suppress(Exception):  # the process may have exited meanwhile
                kill()

    @contextlib.contextmanager
    def kill_on_stop(self, kill: Callable[[], object]) -> Iterator[None]:
        """Within the block, a stop calls ``kill`` (at once when the signal is already stopped)."""
        with self._lock:
            self._kills.append(kill)
            already = self.reason is not None
        if already:
            with contextlib.suppress(Exception):
                kill()
        try:
            yield
        finally:
            with self._lock:
                self._kills.remove(kill)


_current: ContextVar[StopSignal | None] = ContextVar("contentforge_job_stop", default=None)


@contextlib.contextmanager
def bound(signal: StopSignal) -> Iterator[StopSignal]:
    """Make ``signal`` the stop signal of the jobs run in this thread (context) within the block."""
    token = _current.set(signal)
    try:
        yield signal
    finally:
        _current.reset(token)


def current() -> StopSignal | None:
    """The stop signal bound to this thread's job, if any."""
    return _current.get()


__all__ = ["StopSignal", "bound", "current"]
