"""Media job benchmarks (issue 5, item 5), run by hand:

    .venv/bin/python bench/bench_media.py [--runs 5] [--only images,transcode,transcript]

Needs, beyond the project: ``pip install pyvips`` and ``apt-get install libvips42`` (the pyvips
baseline only). Every measurement runs in a fresh child process, which reports its wall time for
the work alone (imports and model loading excluded, sources made beforehand) and its peak memory
(max RSS of the process and of its ffmpeg children). Prints a Markdown table of medians and the
ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WIDTHS = (160, 320, 640, 1280, 1920)


# --------------------------------------------------------------------------- sources


def make_sources(folder: Path) -> dict[str, Path]:
    from PIL import Image, ImageFilter

    from tests import media_factories as mf

    photo = folder / "photo_24mp.jpg"
    if not photo.exists():
        size = (6000, 4000)
        gradient = Image.radial_gradient("L").resize(size).convert("RGB")
        grain = Image.effect_noise(size, 25).convert("RGB")
        tint = Image.new("RGB", size, (40, 120, 200))
        im = Image.blend(Image.blend(gradient, grain, 0.3), tint, 0.3)
        im.filter(ImageFilter.GaussianBlur(1)).save(photo, quality=90)
    hd = folder / "hd_30s.mp4"
    if not hd.exists():
        subprocess.run([
            "ffmpeg", "-nostdin", "-y", "-loglevel", "error",
            "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=30",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", str(hd)], check=True)
    speech = folder / "speech_30s.wav"
    if not speech.exists():
        text = " ".join([mf.SPEECH_SENTENCE,
                         "Readers need captions and a searchable transcript of every lesson.",
                         "Creators upload photos, screen recordings, lessons and podcasts."] * 3)
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(speech), text],
                       check=True)
    checkpoint = folder / "openai_whisper_tiny_en_shaped_random.pt"
    if not checkpoint.exists():
        make_random_whisper(checkpoint)
    return {"photo": photo, "hd": hd, "speech": speech, "checkpoint": checkpoint}


def make_random_whisper(path: Path) -> None:
    """openai-whisper with tiny.en's exact dimensions and random weights (no download possible)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                           n_audio_layer=4, n_vocab=51864, n_text_ctx=448, n_text_state=384,
                           n_text_head=6, n_text_layer=4)
    torch.manual_seed(0)
    model = Whisper(dims)
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)


def hand_typed_transcode(src: Path, out: Path) -> list[str]:
    """The default ladder as a person would type it (same encoder settings as jobs.video)."""
    graph = ("[0:v]split=3[a][b][c];[a]scale=-2:1080,format=yuv420p[v1];"
             "[b]scale=-2:720,format=yuv420p[v2];[c]scale=-2:480,format=yuv420p[v3]")
    args = ["ffmpeg", "-y", "-loglevel", "error", "-i", str(src), "-filter_complex", graph]
    for label, height, rate in (("v1", 1080, 6000), ("v2", 720, 3000), ("v3", 480, 1500)):
        args += ["-map", f"[{label}]", "-map", "0:a", "-c:v", "libx264", "-preset", "veryfast",
                 "-crf", "23", "-profile:v", "high", "-maxrate", f"{rate}k",
                 "-bufsize", f"{2 * rate}k", "-g", "60",
                 "-force_key_frames", "expr:gte(t,n_forced*4)", "-c:a", "aac", "-b:a", "128k",
                 "-ac", "2", "-movflags", "+faststart", str(out / f"hand_{height}p.mp4")]
    return args


# --------------------------------------------------------------------------- cases (in a child)


def case(name: str, sources: dict[str, Path], out: Path) -> dict[str, float]:
    from jobs.limits import MediaLimits
    from jobs.result import no_progress

    limits = MediaLimits()
    extra: dict[str, float] = {}
    if name.startswith("img_"):
        from jobs import images, probe

        sniffed = probe.sniff(sources["photo"])
        widths = list(WIDTHS) if "ladder" in name else [1280]
        formats = ["webp", "avif", "jpeg"] if "ladder" in name else ["jpeg"]
        if name.endswith("_vips"):
            import pyvips

            save = {"webp": ("webp", {"Q": 80, "effort": 4, "strip": True}),
                    "avif": ("avif", {"Q": 60, "effort": 1, "compression": "av1",
                                      "strip": True}),
                    "jpeg": ("jpg", {"Q": 82, "optimize_coding": True, "interlace": True,
                                     "strip": True})}
            start = time.perf_counter()
            for w in widths:
                thumb = pyvips.Image.thumbnail(str(sources["photo"]), w, height=100_000)
                thumb = thumb.copy_memory()  # render once, encode three times
                for fmt in formats:
                    ext, opts = save[fmt]
                    thumb.write_to_file(str(out / f"vips_{w}.{ext}"), **opts)
        else:
            start = time.perf_counter()
            images.run_thumbnail(sources["photo"], out, {"widths": widths, "formats": formats},
                                 limits, no_progress, sniffed)
    elif name == "transcode_ours":
        from jobs import transcode

        start = time.perf_counter()
        transcode.run(sources["hd"], out, {}, limits, no_progress)
    elif name == "transcode_hand":
        start = time.perf_counter()
        subprocess.run(hand_typed_transcode(sources["hd"], out), check=True)
    elif name.startswith("transcript_"):
        from jobs import transcripts

        model = str(sources["checkpoint"]) if name == "transcript_openai" else None
        load = time.perf_counter()
        if name == "transcript_openai":
            # Greedy decoding only: random weights would otherwise trigger the temperature
            # fallback and decode each window six times.
            engine = transcripts.OpenAIWhisperEngine(model, temperature=0.0)
            transcripts._cache[("openai-whisper", model)] = engine
        else:
            transcripts.get_engine("faster-whisper", None)
        extra["model_load_seconds"] = time.perf_counter() - load
        start = time.perf_counter()
        result = transcripts.run(sources["speech"], out,
                                 {"engine": "openai-whisper" if model else "faster-whisper",
                                  "model": model}, limits, no_progress)
        extra["words"] = len(str(result.data["text"]).split())
    else:
        raise SystemExit(f"unknown case {name}")
    seconds = time.perf_counter() - start
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": max(rss_self, rss_children), **extra}


def run_child(name: str, sources: dict[str, Path]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--sources", json.dumps(
                {k: str(v) for k, v in sources.items()}), "--out", out],
            capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of(name: str, sources: dict[str, Path], runs: int) -> dict[str, float]:
    results = [run_child(name, sources) for _ in range(runs)]
    keys = results[0].keys()
    return {k: statistics.median(r[k] for r in results) for k in keys} | {"runs": runs}


def machine() -> str:
    lines = [f"python {platform.python_version()}, {platform.platform()}",
             f"nproc: {os.cpu_count()}"]
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()[:10]
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout
    return "\n".join(lines + lscpu) + "\n" + free


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="images,transcode,transcript")
    parser.add_argument("--child")
    parser.add_argument("--sources")
    parser.add_argument("--out")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "cf-bench-media"))
    args = parser.parse_args()
    if args.child:
        sources = {k: Path(v) for k, v in json.loads(args.sources).items()}
        print(json.dumps(case(args.child, sources, Path(args.out))))
        return

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    sources = make_sources(cache)
    groups = {
        "images": [("img_1280_ours", "img_1280_vips"), ("img_ladder_ours", "img_ladder_vips")],
        "transcode": [("transcode_ours", "transcode_hand")],
        "transcript": [("transcript_faster", "transcript_openai")],
    }
    rows = []
    for group in args.only.split(","):
        for ours, baseline in groups[group]:
            runs = args.runs if group == "images" else max(1, min(args.runs, 3))
            a, b = median_of(ours, sources, runs), median_of(baseline, sources, runs)
            rows.append((ours, baseline, a, b))
            print(f"{ours}: {a}\n{baseline}: {b}", file=sys.stderr)
    print("| case | ours (s) | baseline (s) | time ratio ours/baseline | peak MB ours | "
          "peak MB baseline | runs |")
    print("|---|---|---|---|---|---|---|")
    for ours, baseline, a, b in rows:
        print(f"| {ours} vs {baseline} | {a['seconds']:.3f} | {b['seconds']:.3f} | "
              f"{a['seconds'] / b['seconds']:.2f} | {a['peak_mb']:.0f} | {b['peak_mb']:.0f} | "
              f"{a['runs']:g} |")
    print("\n```\n" + machine() + "```")


if __name__ == "__main__":
    main()
