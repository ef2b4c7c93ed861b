"""Run ffmpeg and ffprobe safely on untrusted files.

Every invocation:

- is an argument list built with ffmpeg-python, run without a shell;
- reads its input through the ``file`` protocol only (``-protocol_whitelist file``, and the path
  given as ``file:/abs/path``), so a playlist or a reference inside a file cannot make ffmpeg open
  another URL or protocol;
- forces the demuxer sniffed from the file's content (``-f mov``), so ffmpeg never guesses a format
  from the file's name or probes it as a playlist (``hls``, ``concat`` are refused up front);
- has a wall-clock timeout (``MediaLimits.max_process_seconds``) and an output size cap (``-fs``);
- reports progress from ffmpeg's own ``-progress`` output;
- runs within the job's thread budget (``MediaLimits.ffmpeg_threads``, see :func:`thread_budget`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

import ffmpeg as ffmpeg_python

from jobs.errors import JobInterrupted, PermanentJobError, TransientJobError
from jobs.result import Progress, no_progress
from jobs.stopping import current as current_stop

#: Demuxers we let ffmpeg use, keyed by the name ``jobs.probe`` sniffs. Playlist and indirection
#: demuxers (hls, concat, image2 with patterns, tee, lavfi) are absent on purpose: they open
#: other files or URLs named inside the input.
ALLOWED_DEMUXERS = frozenset(
    {"mov", "matroska", "avi", "wav", "ogg", "flac", "mp3", "aac", "mpegts", "image2"}
)

#: Demuxers that can be told not to follow references to other files.
_DEMUXER_SAFETY_OPTIONS: dict[str, dict[str, Any]] = {
    # QuickTime "data references" can point to other files: never follow them.
    "mov": {"enable_drefs": 0, "use_absolute_path": 0},
}

#: The kernel kills ffmpeg when the worker thread that started it dies, even by SIGKILL or the OOM
#: killer, so no encode outlives its watchdog: util-linux's setpriv sets PR_SET_PDEATHSIG and then
#: execs ffmpeg. (Not a ``preexec_fn``: running Python code between fork and exec in a
#: multithreaded worker can deadlock, and forces the interpreter to take its import lock to fork.)
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` wrapped so that the process gets SIGKILL when its parent goes away (Linux)."""
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv] if _SETPRIV else argv


#: Threads each ffmpeg run of the current job may use (0: ffmpeg's defaults). Set for the length
#: of one job by :func:`thread_budget` (``jobs.registry.run_job`` does, from its MediaLimits), so
#: that every ffmpeg run of the job honours it without each caller passing it down. A context
#: variable: each worker thread runs its own job with its own budget.
_THREADS: ContextVar[int] = ContextVar("ffmpeg_threads", default=0)


@contextlib.contextmanager
def thread_budget(threads: int) -> Iterator[None]:
    """Every ffmpeg run inside the block uses at most ``threads`` threads per codec and filter graph."""
    token = _THREADS.set(max(0, threads))
    try:
        yield
    finally:
        _THREADS.reset(token)


def with_thread_budget(args: Sequence[str], outputs: Sequence[str], threads: int) -> list[str]:
    """``args`` with thread options: ``-filter_threads``/``-filter_complex_threads`` (global),
    ``-threads`` before each ``-i`` (decoders) and before each output file in ``outputs``
    (encoders: x264 and libvpx take their thread count from it), and ``pools`` in
    ``-x265-params`` (x265 keeps a thread pool of its own that ``-threads`` does not reach)."""
    argv = list(args)
    if threads <= 0:
        return argv
    n = str(threads)
    out = [argv[0], "-filter_threads", n, "-filter_complex_threads", n]
    targets = set(outputs)
    rest = argv[1:]
    for i, arg in enumerate(rest):
        previous = rest[i - 1] if i else ""
        if arg == "-i" or (arg in targets and previous != "-i"):
            out += ["-threads", n]
        if previous == "-x265-params":
            arg = f"{arg}:pools={n}" if arg else f"pools={n}"
        out.append(arg)
    return out


def _output_files(stream: Any) -> list[str]:
    """The output file names of an ffmpeg-python graph (one output node, or merged outputs)."""
    files: list[str] = []
    todo = [stream.node]
    while todo:
        node = todo.pop()
        if isinstance(node, ffmpeg_python.nodes.OutputNode):
            files.append(str(node.kwargs["filename"]))
        else:
            todo += [edge.upstream_node for edge in node.incoming_edges]
    return files


#: How many trailing bytes of ffmpeg's stderr we keep for an error message.
_STDERR_TAIL_BYTES = 4000


def input_url(path: Path) -> str:
    """The only form in which a path is handed to ffmpeg: explicit ``file:`` and absolute."""
    return "file:" + str(Path(path).resolve())


def input_stream(path: Path, demuxer: str, **options: Any) -> Any:
    """An ffmpeg-python input node with the forced demuxer and the file-only protocol whitelist."""
    if demuxer not in ALLOWED_DEMUXERS:
        raise PermanentJobError(f"container format {demuxer!r} is not allowed")
    opts: dict[str, Any] = {"f": demuxer, "protocol_whitelist": "file"}
    opts.update(_DEMUXER_SAFETY_OPTIONS.get(demuxer, {}))
    opts.update(options)
    return ffmpeg_python.input(input_url(path), **opts)


def _tail(data: bytes) -> str:
    text = data[-_STDERR_TAIL_BYTES:].decode("utf-8", "replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def _check_no_shell(args: Sequence[str]) -> list[str]:
    argv = [str(a) for a in args]
    if not argv or argv[0] not in ("ffmpeg", "ffprobe"):
        raise ValueError(f"refusing to run {argv[:1]!r}: only ffmpeg and ffprobe are run here")
    return argv


def ffprobe(path: Path, demuxer: str, *, timeout: float, show_data: bool = False) -> dict[str, Any]:
    """ffprobe's JSON description (format and streams) of ``path``, read with ``demuxer`` forced;
    ``show_data`` adds each stream's codec extradata as a hex dump (``extradata``)."""
    if demuxer not in ALLOWED_DEMUXERS:
        raise PermanentJobError(f"container format {demuxer!r} is not allowed")
    args = ["ffprobe", "-hide_banner", "-v", "error", "-f", demuxer, "-protocol_whitelist", "file"]
    for key, value in _DEMUXER_SAFETY_OPTIONS.get(demuxer, {}).items():
        args += [f"-{key}", str(value)]
    args += ["-show_format", "-show_streams", "-show_error", "-print_format", "json"]
    if show_data:
        args.append("-show_data")
    args.append(input_url(path))
    try:
        proc = subprocess.run(
            _check_no_shell(args), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise PermanentJobError(f"probing the file took longer than {timeout:g} s") from exc
    except FileNotFoundError as exc:
        raise TransientJobError("ffprobe is not installed on this worker") from exc
    try:
        info = json.loads(proc.stdout or b"{}")
    except ValueError as exc:
        raise PermanentJobError("the media file could not be read: ffprobe gave no description") from exc
    if proc.returncode != 0 or "error" in info or "format" not in info:
        message = info.get("error", {}).get("string") or _tail(proc.stderr)
        raise PermanentJobError(f"the media file could not be read: {message}")
    return info


class _Watchdog:
    """Kills a process that outlives its time limit."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        self.fired = False
        self._proc = proc
        self._timer = threading.Timer(timeout, self._kill)
        self._timer.daemon = True
        self._timer.start()

    def _kill(self) -> None:
        self.fired = True
        self._proc.kill()

    def cancel(self) -> None:
        self._timer.cancel()


def run_ffmpeg(
    stream: Any,
    *,
    timeout: float,
    duration: float | None = None,
    progress: Progress = no_progress,
    what: str = "ffmpeg",
    loglevel: str = "error",
) -> bytes:
    """Run the ffmpeg graph ``stream`` (an ffmpeg-python output node) and return its stderr.

    ``duration`` (seconds of media being processed) turns ffmpeg's ``out_time`` into a fraction for
    ``progress``. A non-zero exit is a :class:`PermanentJobError` naming ffmpeg's last error line:
    the input passed probing, so a decoder failure means the file is broken, not the worker.
    """
    args = ffmpeg_python.compile(stream, cmd="ffmpeg", overwrite_output=True)
    # Global options go right after the program name.
    args = [args[0], "-hide_banner", "-nostdin", "-nostats", "-loglevel", loglevel,
            "-progress", "pipe:1", *args[1:]]
    return run_argv(args, timeout=timeout, duration=duration, progress=progress, what=what,
                    outputs=_output_files(stream))


def run_argv(
    args: Sequence[str],
    *,
    timeout: float,
    duration: float | None = None,
    progress: Progress = no_progress,
    what: str = "ffmpeg",
    feed: Callable[[IO[bytes]], None] | None = None,
    outputs: Sequence[str] = (),
) -> bytes:
    """Run an ffmpeg argument list (already carrying ``-progress pipe:1``); see :func:`run_ffmpeg`.

    ``feed``, when given, is called in a thread with ffmpeg's stdin (an input ``pipe:0``) and
    writes the input there; stdin is closed when it returns. ``outputs`` are the output file
    arguments, where the job's thread budget puts the encoders' ``-threads``.
    """
    argv = _check_no_shell(args)
    if argv[0] == "ffmpeg":
        argv = with_thread_budget(argv, outputs, _THREADS.get())
    try:
        if shutil.which(argv[0]) is None:
            raise FileNotFoundError(argv[0])
        proc = subprocess.Popen(
            _die_with_parent(argv), stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise TransientJobError("ffmpeg is not installed on this worker") from exc
    watchdog = _Watchdog(proc, timeout)
    # A stop of the job (cancelled, lease lost, self-fenced) kills ffmpeg at once, whether or not
    # it is reporting progress (jobs.stopping).
    stop = current_stop()
    stopping = contextlib.ExitStack()
    if stop is not None:
        stopping.enter_context(stop.kill_on_stop(proc.kill))
    stderr_chunks: list[bytes] = []

    def drain_stderr() -> None:
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read(65536), b""):  # type: ignore[union-attr]
            stderr_chunks.append(chunk)
            if len(stderr_chunks) > 64:  # keep the tail only
                del stderr_chunks[:32]

    reader = threading.Thread(target=drain_stderr, daemon=True)
    reader.start()
    feed_errors: list[BaseException] = []

    def write_stdin() -> None:
        assert feed is not None and proc.stdin is not None
        try:
            feed(proc.stdin)
        except BrokenPipeError:
            pass  # ffmpeg stopped reading: its exit status and stderr tell why
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            feed_errors.append(exc)
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()

    writer = threading.Thread(target=write_stdin, daemon=True) if feed else None
    if writer is not None:
        writer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            key, _, value = raw.decode("ascii", "replace").strip().partition("=")
            if key == "out_time_us" and duration and value.isdigit():
                _report(progress, min(1.0, int(value) / 1e6 / duration))
        proc.wait()
    finally:
        stopping.close()
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        if writer is not None:
            writer.join(timeout=5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    stderr = b"".join(stderr_chunks)
    if stop is not None and stop.stopped:
        raise JobInterrupted(f"{what} was stopped: {stop.reason}")
    if feed_errors:
        raise feed_errors[0]
    if watchdog.fired:
        raise PermanentJobError(f"{what} took longer than the {timeout:g} s limit")
    if proc.returncode != 0:
        raise PermanentJobError(f"{what} failed: {_tail(stderr)}")
    return stderr


def _report(progress: Progress, fraction: float) -> None:
    """Report progress; a request to stop ends the encode (the caller's finally kills ffmpeg), any
    other failure of the callback must never break the encode it reports on."""
    try:
        progress(fraction)
    except JobInterrupted:
        raise
    except Exception:  # noqa: BLE001, S110 - a broken progress display is not the job's failure
        pass


def check_output_size(path: Path, max_bytes: int) -> int:
    """Size of an output file; a file at ffmpeg's ``-fs`` cap was cut short, so that is an error."""
    if not path.exists():
        raise PermanentJobError(f"ffmpeg produced no {path.name}")
    size = path.stat().st_size
    if size >= max_bytes:
        raise PermanentJobError(
            f"{path.name} reached the output size limit of {max_bytes} bytes"
        )
    return size


class Timer:
    """Deadline shared by the several ffmpeg runs of one job."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        self.limit = seconds

    def remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise PermanentJobError(f"the job took longer than the {self.limit:g} s limit")
        return left
