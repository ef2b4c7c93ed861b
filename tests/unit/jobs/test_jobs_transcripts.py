"""Transcripts with both engines: faster-whisper (shipped tiny.en) and openai-whisper."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import pytest

from jobs import run_job, transcripts
from jobs.errors import PermanentJobError
from tests import media_factories as mf


def _normalise(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).strip()


@pytest.mark.slow
def test_faster_whisper_transcribes_sentence(talk: Path, workdir: Path) -> None:
    """faster-whisper with the shipped model gets the spoken sentence with WER under 0.3."""
    result = run_job("transcript", talk, workdir, {}, operator_params={"engine": "faster-whisper"})
    wer = jiwer.wer(_normalise(mf.SPEECH_SENTENCE), _normalise(result.data["text"]))
    assert wer < 0.3, result.data["text"]
    assert result.data["language"] == "en" and result.data["segments"] >= 1
    assert 3 < result.data["duration"] < 8


@pytest.mark.slow
def test_transcript_files(talk: Path, workdir: Path) -> None:
    """The job writes VTT, SRT, JSON segments and plain text that agree with each other."""
    result = run_job("transcript", talk, workdir, {})
    names = {o.name: o.path for o in result.outputs}
    assert set(names) == {"transcript.vtt", "transcript.srt", "transcript.json", "transcript.txt"}
    doc = json.loads(names["transcript.json"].read_text())
    assert doc["engine"] == "faster-whisper" and len(doc["segments"]) == result.data["segments"]
    first = doc["segments"][0]
    assert 0 <= first["start"] < first["end"]
    assert names["transcript.vtt"].read_text().startswith("WEBVTT\n\n00:00:")
    assert names["transcript.srt"].read_text().startswith("1\n00:00:")
    assert "-->" in names["transcript.srt"].read_text().splitlines()[1]
    assert names["transcript.txt"].read_text().strip() == result.data["text"]


def test_engine_cached_per_process() -> None:
    """Asking twice for the same engine and model returns the one loaded instance."""
    assert transcripts.get_engine("faster-whisper") is transcripts.get_engine("faster-whisper")


def test_unknown_engine(talk: Path, workdir: Path) -> None:
    """An unknown engine name is a permanent error that lists the known ones."""
    with pytest.raises(PermanentJobError, match=r"unknown speech engine 'vosk'.*faster-whisper"):
        run_job("transcript", talk, workdir, {}, operator_params={"engine": "vosk"})


def test_video_without_audio_refused(tmp_path: Path, workdir: Path) -> None:
    """A silent video (no audio stream) fails with a readable message."""
    src = mf.video(tmp_path, "mute.mp4", seconds=1, audio=False)
    with pytest.raises(PermanentJobError, match="no audio stream"):
        run_job("transcript", src, workdir, {})


@pytest.fixture
def random_whisper_checkpoint(tmp_path: Path) -> Path:
    """A tiny randomly initialised openai-whisper checkpoint (no weights can be downloaded)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("whisper")
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                           n_audio_layer=1, n_vocab=51865, n_text_ctx=448, n_text_state=64,
                           n_text_head=2, n_text_layer=1)
    torch.manual_seed(0)
    model = Whisper(dims)
    # Whisper leaves the decoder's positional embedding uninitialised (torch.empty).
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    path = tmp_path / "random-whisper.pt"
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


# whisper.tokenizer reads its vocabulary with open(...).read() and never closes the file.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.slow
def test_openai_whisper_runs_end_to_end(talk: Path, workdir: Path,
                                        random_whisper_checkpoint: Path) -> None:
    """openai-whisper loads a checkpoint by path and produces all four files (text is noise)."""
    result = run_job("transcript", talk, workdir, {"language": "en"}, operator_params={
        "engine": "openai-whisper", "model": str(random_whisper_checkpoint)})
    assert result.data["engine"] == "openai-whisper" and result.data["language"] == "en"
    assert result.data["model"] == str(random_whisper_checkpoint)
    doc = json.loads((workdir / "transcript.json").read_text())
    assert doc["engine"] == "openai-whisper"
    assert all({"start", "end", "text"} <= set(s) for s in doc["segments"])
    assert len(doc["segments"]) == result.data["segments"]
    assert {o.name for o in result.outputs} == {
        "transcript.vtt", "transcript.srt", "transcript.json", "transcript.txt"}


@pytest.mark.slow
def test_time_limit_stops_faster_whisper_between_segments(tmp_path: Path, workdir: Path) -> None:
    """Past the job's time limit, the in-process engine is stopped at its next segment instead of
    decoding the rest of a long recording and failing only at the end."""
    import time

    from jobs.limits import MediaLimits

    long_talk = mf.speech_wav(tmp_path, "long.wav", text=" ".join([mf.SPEECH_SENTENCE] * 14))  # ~70 s
    reports: list[float] = []

    def progress(fraction: float) -> None:
        reports.append(fraction)
        if fraction > 0.1 and len([r for r in reports if r > 0.1]) == 1:
            time.sleep(3.5)  # the first segment is out: let the 3 s limit pass

    with pytest.raises(PermanentJobError, match=r"longer than the 3 s limit"):
        run_job("transcript", long_talk, workdir, {}, operator_params={"engine": "faster-whisper"},
                limits=MediaLimits(max_process_seconds=3), progress=progress)
    assert max(reports) < 0.5, reports  # stopped within the first 30 s window of ~70 s
