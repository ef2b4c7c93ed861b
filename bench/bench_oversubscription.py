"""Oversubscription (issue 14): four concurrent 1080p transcodes with ffmpeg's default threads vs
the worker's thread budget, run by hand:

    .venv/bin/python bench/bench_oversubscription.py [--runs 3] [--seconds 20] [--jobs 4]

The source is made once with ffmpeg's lavfi (testsrc2 1920x1080 at 25 fps with a 440 Hz tone,
``--seconds`` long, x264 ultrafast) in the cache folder. Each run is a fresh child process that
runs ``--jobs`` transcodes at once, each in a thread of its own, through the real job entry
(``jobs.registry.run_job("transcode", ...)``, default parameters: the 1080/720/480 ladder
and the loudness pass), as one worker process with ``--jobs`` threads does. ``default`` gives
ffmpeg no thread options (MediaLimits.ffmpeg_threads = 0); ``budget`` gives it the count the
worker's auto rule computes for one process with ``--jobs`` threads on this machine
(``workers.thread_budget``); ``--also N`` adds a case with N threads. The cases are interleaved
(default, budget, default, ...);
medians of ``--runs`` runs each. Reported per run: wall time for all jobs, CPU seconds of the
child and its ffmpeg processes, and load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_source(cache: Path, seconds: int) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"src_1080p_{seconds}s.mp4"
    if not path.exists():
        tmp = path.with_suffix(".tmp.mp4")
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=25:duration={seconds}",
             "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
             "-shortest", str(tmp)], check=True)
        tmp.rename(path)
    return path


def cpu_seconds() -> float:
    """CPU of this process and of its waited-for children (the ffmpeg runs)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child(source: Path, jobs: int, threads: int) -> dict[str, float]:
    """``jobs`` transcodes at once through run_job, each in its own thread; wall and CPU."""
    from jobs.job_input import JobInput
    from jobs.limits import MediaLimits
    from jobs.registry import run_job

    limits = MediaLimits(ffmpeg_threads=threads)
    errors: list[BaseException] = []

    def one(i: int, workdir: Path) -> None:
        try:
            result = run_job("transcode", JobInput(source, workdir, {}, limits))
            assert len(result.outputs) == 3, result.outputs
        except BaseException as exc:
            errors.append(exc)

    with tempfile.TemporaryDirectory() as out:
        dirs = [Path(out) / f"job{i}" for i in range(jobs)]
        for d in dirs:
            d.mkdir()
        workers = [threading.Thread(target=one, args=(i, d)) for i, d in enumerate(dirs)]
        wall, cpu = time.perf_counter(), cpu_seconds()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if errors:
        raise errors[0]
    return {"seconds": wall, "cpu_seconds": cpu}


def run_child(source: Path, jobs: int, threads: int) -> dict[str, float]:
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, __file__, "--child", str(source), "--jobs", str(jobs),
                           "--threads", str(threads)], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result | {"load_before": load, "load_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--also", type=int, action="append", default=[],
                        help="a further case with this many threads per ffmpeg run (repeatable)")
    parser.add_argument("--child")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "cf-bench-oversubscription"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.jobs, args.threads)))
        return

    from workers.thread_budget import available_cpus, ffmpeg_threads

    source = make_source(Path(args.cache), args.seconds)
    cpus = available_cpus()
    budget = ffmpeg_threads(0, processes=1, threads=args.jobs, cpus=cpus)
    cases = {"default": 0, "budget": budget} | {f"{n} threads": n for n in args.also}
    print(f"source {source} ({args.seconds} s 1920x1080 25 fps); cpus {cpus:g}; budget {budget} "
          f"thread(s) per ffmpeg run; load at start {os.getloadavg()}", file=sys.stderr)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, threads in cases.items():
            r = run_child(source, args.jobs, threads)
            results[name].append(r)
            print(f"  {name}: {json.dumps(r)}", file=sys.stderr)
    print(f"load at end {os.getloadavg()}", file=sys.stderr)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "cpu_seconds")}
           for name, rs in results.items()}
    print("| ffmpeg threads | runs | wall s (each run) | median wall s | median CPU s | "
          "load 1 min before each run |")
    print("|---|---|---|---|---|---|")
    for name, threads in cases.items():
        rs = results[name]
        walls = ", ".join(f"{r['seconds']:.1f}" for r in rs)
        loads = ", ".join(f"{r['load_before']:.1f}" for r in rs)
        print(f"| {name} ({threads or 'ffmpeg default'}) | {len(rs)} | {walls} | "
              f"{med[name]['seconds']:.1f} | {med[name]['cpu_seconds']:.1f} | {loads} |")
    for name in cases:
        if name != "default":
            print(f"{name}/default: wall {med[name]['seconds'] / med['default']['seconds']:.3f}, "
                  f"CPU {med[name]['cpu_seconds'] / med['default']['cpu_seconds']:.3f}")


if __name__ == "__main__":
    main()
