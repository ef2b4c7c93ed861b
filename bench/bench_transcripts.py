"""Transcript benchmarks (issue 13), run by hand:

    .venv/bin/python bench/bench_transcripts.py [--runs 3] [--only rtf,long] [--folder DIR]

``rtf``: one ~10-minute recording of espeak-ng speech with pauses (1 to 6 s, and a few of 20 s),
over a -60 dBFS noise floor, transcribed by faster-whisper with the shipped tiny.en (int8): the
settings before issue 13 (the whole track at once, no VAD, faster-whisper's defaults otherwise,
beam 5) against the job's settings now (``jobs.transcripts.transcribe_file``: windows, Silero VAD,
no conditioning on previous text), sequential and batched (batch size 4). Runs are
interleaved (each round runs every configuration once), each in a fresh child process; the time
covers the transcription alone (model loaded and audio decoded beforehand). Word error rate
against the text espeak-ng was given (jiwer, lower-cased, punctuation removed).

``long``: peak RSS of the whole transcript job (``run_job("transcript", ...)``: ffmpeg decode,
windows, VAD, model) on a 2-hour AAC recording: twelve times one minute of that speech followed
by nine minutes of room tone. Peak RSS is the child's ``ru_maxrss`` (ffmpeg's separately).

Prints Markdown tables of medians and ratios against the "before" configuration.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Harvard sentences (IEEE 1969 recommended practice for speech quality measurements).
SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
]
RATE = 22050
TARGET_SECONDS = 600.0
CONFIGS = ("before", "vad", "vad_batch4")


def _normalise(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def _wav_samples(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.readframes(w.getnframes())


def make_recording(folder: Path) -> tuple[Path, str]:
    """~10 minutes of speech with pauses, as a 22.05 kHz WAV, and the text said in it."""
    import numpy as np

    wav, ref = folder / "speech_pauses_10min.wav", folder / "speech_pauses_10min.txt"
    if wav.exists() and ref.exists():
        return wav, ref.read_text()
    rng = random.Random(13)
    spoken = []
    for i, text in enumerate(SENTENCES):
        p = folder / f"s{i:02d}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(p), text], check=True)
        spoken.append((text, np.frombuffer(_wav_samples(p), dtype=np.int16)))
    parts, said, total, n = [], [], 0.0, 0
    while total < TARGET_SECONDS:
        pause = 20.0 if n % 17 == 16 else rng.uniform(1.0, 6.0)
        parts.append(np.zeros(int(pause * RATE), dtype=np.int16))
        text, samples = spoken[rng.randrange(len(spoken))]
        parts.append(samples)
        said.append(text)
        total += pause + len(samples) / RATE
        n += 1
    parts.append(np.zeros(3 * RATE, dtype=np.int16))
    audio = np.concatenate(parts).astype(np.float32)
    noise = np.random.default_rng(13).normal(0, 32768 * 0.001, len(audio))  # about -60 dBFS
    audio = np.clip(audio + noise, -32768, 32767).astype(np.int16)
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(audio.tobytes())
    ref.write_text(" ".join(said))
    return wav, ref.read_text()


def make_long(folder: Path, speech: Path) -> Path:
    """2 hours of AAC: 12 x (1 minute of the speech recording, 9 minutes of room tone)."""
    out = folder / "long_2h.m4a"
    if out.exists():
        return out
    minute, quiet = folder / "speech_1min.wav", folder / "quiet_9min.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(speech), "-t", "60",
                    str(minute)], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i",
                    f"anoisesrc=r={RATE}:c=pink:a=0.001:d=540:seed=3", "-ac", "1",
                    "-sample_fmt", "s16", str(quiet)], check=True)
    listing = folder / "long.txt"
    listing.write_text("".join(f"file '{minute}'\nfile '{quiet}'\n" for _ in range(12)))
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "concat", "-safe", "0", "-i",
                    str(listing), "-c:a", "aac", "-b:a", "64k", str(out)], check=True)
    return out


# --------------------------------------------------------------------------- children


def child_rtf(config: str, wav: Path, raw: Path) -> dict[str, float]:
    import numpy as np

    from jobs import transcripts

    engine = transcripts.get_engine()
    if config == "before":
        model = engine._model  # type: ignore[attr-defined]
        samples = np.fromfile(raw, dtype=np.int16).astype(np.float32) / 32768.0
        start = time.perf_counter()
        segments, _info = model.transcribe(samples, beam_size=5, vad_filter=False)
        text = " ".join(s.text.strip() for s in segments)
    else:
        batch = int(config.removeprefix("vad_batch")) if "batch" in config else 1
        options = transcripts.DecodeOptions(batch_size=batch)
        duration = raw.stat().st_size / 2 / transcripts.SAMPLE_RATE
        start = time.perf_counter()
        text = transcripts.transcribe_file(raw, duration, engine, options, lambda f: None).text
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "text": text,  # type: ignore[dict-item]
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_long(source: Path, work: Path) -> dict[str, float]:
    from jobs import JobInput, run_job

    work.mkdir(exist_ok=True)
    start = time.perf_counter()
    result = run_job("transcript", JobInput(source, work))
    return {"seconds": time.perf_counter() - start, "segments": result.data["segments"],
            "duration": result.data["duration"],
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "ffmpeg_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def _child(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="rtf,long")
    ap.add_argument("--folder", type=Path, default=Path("/tmp/cf-bench-transcripts"))
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "rtf":
            print(json.dumps(child_rtf(rest[0], Path(rest[1]), Path(rest[2]))))
        else:
            print(json.dumps(child_long(Path(rest[0]), Path(rest[1]))))
        return
    import jiwer

    args.folder.mkdir(parents=True, exist_ok=True)
    wav, reference = make_recording(args.folder)
    raw = args.folder / "speech_pauses_10min.s16le"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(wav), "-f", "s16le",
                    "-ac", "1", "-ar", "16000", str(raw)], check=True)
    length = raw.stat().st_size / 2 / 16000
    print(f"machine: {platform.node()} {platform.machine()}, {platform.python_version()}, "
          f"recording {length:.1f} s, {len(reference.split())} words")
    only = set(args.only.split(","))
    if "rtf" in only:
        results: dict[str, list[dict[str, float]]] = {c: [] for c in CONFIGS}
        for r in range(args.runs):
            for config in CONFIGS:
                res = _child("rtf", config, str(wav), str(raw))
                res["wer"] = jiwer.wer(_normalise(reference), _normalise(str(res["text"])))
                results[config].append(res)
                print(f"  run {r + 1} {config}: {res['seconds']:.2f} s, WER {res['wer']:.3f}, "
                      f"{res['maxrss_mb']:.0f} MB", flush=True)
        base = statistics.median(x["seconds"] for x in results["before"])
        print("\n| configuration | median s | realtime factor | ratio to before | WER | peak MB | runs |")
        print("|---|---|---|---|---|---|---|")
        for config in CONFIGS:
            med = statistics.median(x["seconds"] for x in results[config])
            wer = statistics.median(x["wer"] for x in results[config])
            rss = statistics.median(x["maxrss_mb"] for x in results[config])
            print(f"| {config} | {med:.2f} | {med / length:.4f} | {med / base:.2f} | {wer:.3f} | "
                  f"{rss:.0f} | {args.runs} |")
    if "long" in only:
        source = make_long(args.folder, wav)
        res = _child("long", str(source), str(args.folder / "long_work"))
        print(f"\n2-hour recording: {res['seconds']:.1f} s, {res['segments']} cues, "
              f"duration {res['duration']} s, peak RSS {res['maxrss_mb']:.0f} MB "
              f"(ffmpeg {res['ffmpeg_maxrss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
