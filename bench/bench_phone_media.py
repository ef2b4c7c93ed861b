"""What phones upload (issue 18), run by hand:

    .venv/bin/python bench/bench_phone_media.py [--runs 5] [--video-runs 3] [--only heic,hlg]

- ``heic``: a 12 MP photo (4032x3024, photo-like: gradient, grain, blur) as HEIC (pillow-heif,
  quality 90) vs the same pixels as JPEG (quality 90), each through the image thumbnail job's full
  ladder (160/320/640/1280/1920 in WebP, AVIF and JPEG, blurhash, dominant colour).
- ``hlg``: a 1080p 10 s 10-bit HEVC HLG clip (BT.2020, ffmpeg's testsrc2) through the transcode job's
  default ladder (1080p/720p/480p H.264), tone-mapped to BT.709 as shipped vs the same job with the
  tone-mapping step removed (``jobs.colour.to_sdr`` replaced by the identity in the child: the
  10-bit frames are only converted to 8-bit, what the code did before).

Every measurement runs in a fresh child process (work only: imports and sources excluded) and
reports wall time, CPU time (the process and its ffmpeg children) and peak memory: max RSS of the
process or of its ffmpeg children, and "work peak": the process's peak above its RSS after the
imports (or the ffmpeg child's peak, when larger).
Cases are interleaved run by run; medians and ratios are printed as Markdown.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_media import cpu_now, machine  # noqa: E402


def make_sources(folder: Path) -> dict[str, Path]:
    from PIL import Image, ImageFilter

    from jobs import probe  # noqa: F401 - registers the HEIF plugin with Pillow

    heic, jpeg = folder / "photo_12mp.heic", folder / "photo_12mp.jpg"
    if not heic.exists() or not jpeg.exists():
        size = (4032, 3024)
        gradient = Image.radial_gradient("L").resize(size).convert("RGB")
        grain = Image.effect_noise(size, 25).convert("RGB")
        tint = Image.new("RGB", size, (200, 120, 40))
        im = Image.blend(Image.blend(gradient, grain, 0.3), tint, 0.3).filter(ImageFilter.GaussianBlur(1))
        im.save(jpeg, quality=90)
        im.save(heic, format="HEIF", quality=90)
    hlg = folder / "hlg_1080p_10s.mp4"
    if not hlg.exists():
        subprocess.run([
            "ffmpeg", "-nostdin", "-y", "-loglevel", "error",
            "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=10",
            "-vf", "format=yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1",
            "-x265-params", "crf=22:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc:log-level=error",
            "-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc",
            "-color_range", "tv", str(hlg)], check=True)
    return {"heic": heic, "jpeg": jpeg, "hlg": hlg}


def rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def case(name: str, sources: dict[str, Path], out: Path) -> dict[str, float]:
    from jobs import JobInput, colour, images, probe, transcode  # imported before measuring

    rss_start = rss_now_mb()
    if name in ("heic_ladder", "jpeg_ladder"):
        from jobs import images, probe

        src = sources[name.split("_")[0]]
        sniffed = probe.sniff(src)
        start, cpu_start = time.perf_counter(), cpu_now()
        images.run_thumbnail(JobInput(src, out), sniffed)
    elif name in ("hlg_tonemapped", "hlg_not_tonemapped"):
        from jobs import colour, transcode

        if name == "hlg_not_tonemapped":
            colour.to_sdr = lambda stream, source, size=None: stream
        start, cpu_start = time.perf_counter(), cpu_now()
        transcode.run(JobInput(sources["hlg"], out))
    else:
        raise SystemExit(f"unknown case {name}")
    seconds = time.perf_counter() - start
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": seconds, "peak_mb": max(rss_self, rss_children),
            "work_peak_mb": max(rss_self - rss_start, rss_children),
            "cpu_seconds": cpu_now() - cpu_start + children.ru_utime + children.ru_stime}


def run_child(name: str, sources: dict[str, Path]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--sources",
             json.dumps({k: str(v) for k, v in sources.items()}), "--out", out],
            capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def medians_of(names: list[str], sources: dict[str, Path], runs: int) -> dict[str, dict[str, float]]:
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(runs):
        for name in names:
            results[name].append(run_child(name, sources))
            print(f"  {name}: {results[name][-1]['seconds']:.2f} s, load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr)
    return {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} | {"runs": runs}
            for name, rs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--video-runs", type=int, default=3)
    parser.add_argument("--only", default="heic,hlg")
    parser.add_argument("--child")
    parser.add_argument("--sources")
    parser.add_argument("--out")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "cf-bench-phone"))
    args = parser.parse_args()
    if args.child:
        sources = {k: Path(v) for k, v in json.loads(args.sources).items()}
        print(json.dumps(case(args.child, sources, Path(args.out))))
        return
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    sources = make_sources(cache)
    groups = {"heic": ("heic_ladder", "jpeg_ladder"), "hlg": ("hlg_tonemapped", "hlg_not_tonemapped")}
    load_before = os.getloadavg()
    rows = []
    for group in args.only.split(","):
        ours, baseline = groups[group]
        runs = args.video_runs if group == "hlg" else args.runs
        m = medians_of([ours, baseline], sources, runs)
        rows.append((ours, baseline, m[ours], m[baseline]))
    load_after = os.getloadavg()
    print("| case | baseline | s | s baseline | ratio | CPU s | CPU s baseline | peak MB | peak MB baseline "
          "| work peak MB | work peak MB baseline | runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for ours, baseline, a, b in rows:
        print(f"| {ours} | {baseline} | {a['seconds']:.3f} | {b['seconds']:.3f} | "
              f"{a['seconds'] / b['seconds']:.2f} | {a['cpu_seconds']:.2f} | {b['cpu_seconds']:.2f} | "
              f"{a['peak_mb']:.0f} | {b['peak_mb']:.0f} | {a['work_peak_mb']:.0f} | "
              f"{b['work_peak_mb']:.0f} | {a['runs']:g} |")
    print(f"- load average (1, 5, 15 min) before {load_before}, after {load_after}")
    print("\n```\n" + machine() + "```")


if __name__ == "__main__":
    main()
