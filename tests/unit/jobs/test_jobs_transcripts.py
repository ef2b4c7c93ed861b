"""Transcripts with both engines: faster-whisper (shipped tiny.en) and openai-whisper."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jiwer
import pytest

from jobs import JobInput, run_job, transcripts
from jobs.errors import PermanentJobError
from tests import media_factories as mf
from workers.job_options import speech_defaults


def _normalise(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).strip()


@pytest.mark.slow
def test_faster_whisper_transcribes_sentence(talk: Path, workdir: Path) -> None:
    """faster-whisper with the shipped model gets the spoken sentence with WER under 0.3."""
    result = run_job("transcript", JobInput(talk, workdir, speech=transcripts.SpeechDefaults(engine="faster-whisper")))
    wer = jiwer.wer(_normalise(mf.SPEECH_SENTENCE), _normalise(result.data["text"]))
    assert wer < 0.3, result.data["text"]
    assert result.data["language"] == "en" and result.data["segments"] >= 1
    assert 3 < result.data["duration"] < 8


@pytest.mark.slow
def test_transcript_files(talk: Path, workdir: Path) -> None:
    """The job writes VTT, SRT, JSON segments and plain text that agree with each other."""
    result = run_job("transcript", JobInput(talk, workdir))
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
        run_job("transcript", JobInput(talk, workdir, speech=transcripts.SpeechDefaults(engine="vosk")))


@pytest.fixture
def random_whisper_checkpoint(tmp_path: Path) -> Path:
    """A tiny randomly initialised openai-whisper checkpoint (no weights can be downloaded)."""
    pytest.importorskip("torch")
    pytest.importorskip("whisper")
    return mf.random_whisper_checkpoint(tmp_path)


# whisper.tokenizer reads its vocabulary with open(...).read() and never closes the file.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.slow
def test_openai_whisper_runs_end_to_end(talk: Path, workdir: Path,
                                        random_whisper_checkpoint: Path) -> None:
    """openai-whisper loads a checkpoint by path and produces all four files (text is noise)."""
    result = run_job("transcript", JobInput(talk, workdir, {"language": "en"}, speech=transcripts.SpeechDefaults(
        engine="openai-whisper", model=str(random_whisper_checkpoint))))
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
        run_job("transcript", JobInput(long_talk, workdir, limits=MediaLimits(max_process_seconds=3), progress=progress,
                                       speech=transcripts.SpeechDefaults(engine="faster-whisper")))
    assert max(reports) < 0.5, reports  # stopped within the first 30 s window of ~70 s


# --------------------------------------------------------------------------- absence is not failure


def _ffprobe_duration(path: Path) -> float:
    """The file's duration as ffprobe reads it (an oracle outside our code)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout)["format"]["duration"])


def _files(result: Any) -> dict[str, Path]:
    return {o.name: o.path for o in result.outputs}


def _assert_no_speech_files(result: Any) -> None:
    names = _files(result)
    assert set(names) == {"transcript.vtt", "transcript.srt", "transcript.json", "transcript.txt"}
    doc = json.loads(names["transcript.json"].read_text())
    assert doc["has_speech"] is False and doc["segments"] == [] and doc["language"] is None
    assert names["transcript.vtt"].read_text().strip() == "WEBVTT"
    assert names["transcript.srt"].read_text() == "" and names["transcript.txt"].read_text() == ""
    assert result.data["text"] == "" and result.data["has_speech"] is False


def test_video_without_audio_has_no_speech(tmp_path: Path, workdir: Path) -> None:
    """A video with no audio stream completes: four files, no cues, has_speech false."""
    src = mf.video(tmp_path, "mute.mp4", seconds=1, audio=False)
    result = run_job("transcript", JobInput(src, workdir))
    _assert_no_speech_files(result)
    assert result.data["has_audio"] is False


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.0, 0.003], ids=["digital-silence", "room-tone"])
def test_all_silence_has_no_speech(tmp_path: Path, workdir: Path, noise: float) -> None:
    """A recording in which nothing is said gets no cue and no text (the old settings heard
    "You" in digital silence)."""
    src = mf.silent_audio(tmp_path, "quiet.m4a", seconds=10, noise=noise)
    result = run_job("transcript", JobInput(src, workdir))
    _assert_no_speech_files(result)
    assert result.data["has_audio"] is True


def test_unreadable_audio_still_fails(tmp_path: Path, workdir: Path) -> None:
    """A truncated recording that cannot be read fails with a readable message."""
    whole = mf.silence_speech_silence(tmp_path, "whole.m4a", lead=1, trail=1)
    broken = mf.truncated(whole, "broken.m4a", keep=0.05)
    with pytest.raises(PermanentJobError) as info:
        run_job("transcript", JobInput(broken, workdir))
    assert str(info.value) and "Traceback" not in str(info.value)


# --------------------------------------------------------------------------- no invented words


@pytest.fixture(scope="session")
def pauses(media: Path) -> Path:
    """8 s of room tone, espeak-ng saying ``mf.SPEECH_SENTENCE``, 8 s of room tone."""
    return mf.silence_speech_silence(media, "pauses.wav", lead=8, trail=8)


#: Silero VAD keeps some padding around speech, and Whisper's timestamps are coarse: a cue may
#: reach this far into the silence around the speech, in seconds.
CUE_SLACK_SECONDS = 1.0


def _speech_span(path: Path, lead: float, trail: float) -> tuple[float, float]:
    return lead, _ffprobe_duration(path) - trail


@pytest.mark.slow
def test_no_cue_or_text_in_silent_stretches(pauses: Path, workdir: Path) -> None:
    """Silence, speech, silence: every cue lies within the speech, the words are right (WER
    under 0.3), nothing is added (the old settings started the cue at 0.000 in the silence)."""
    result = run_job("transcript", JobInput(pauses, workdir))
    start, end = _speech_span(pauses, 8, 8)
    doc = json.loads((workdir / "transcript.json").read_text())
    assert doc["segments"], "the sentence was heard"
    for seg in doc["segments"]:
        assert start - CUE_SLACK_SECONDS <= seg["start"] < seg["end"] <= end + CUE_SLACK_SECONDS, seg
    assert jiwer.wer(_normalise(mf.SPEECH_SENTENCE), _normalise(result.data["text"])) < 0.3
    assert doc["has_speech"] is True
    assert doc["language"] == "en" and 0.5 <= doc["language_probability"] <= 1.0


@pytest.mark.slow
def test_cue_end_within_duration(tmp_path: Path, workdir: Path) -> None:
    """When speech runs to the very end, no cue ends after the media does (ffprobe's duration;
    the old code ended the cue at 7.000 s on a 5.46 s file)."""
    src = mf.silence_speech_silence(tmp_path, "to_the_end.wav", lead=1, trail=0)
    run_job("transcript", JobInput(src, workdir))
    duration = _ffprobe_duration(src)
    doc = json.loads((workdir / "transcript.json").read_text())
    assert doc["segments"]
    assert all(0 <= s["start"] < s["end"] <= duration for s in doc["segments"]), (duration, doc)
    vtt_ends = [line.split(" --> ")[1] for line in (workdir / "transcript.vtt").read_text().splitlines()
                if " --> " in line]
    h, m, s = vtt_ends[-1].split(":")
    assert int(h) * 3600 + int(m) * 60 + float(s) <= duration


@pytest.mark.slow
def test_word_timestamps_on_request(pauses: Path, workdir: Path) -> None:
    """``{"word_timestamps": true}`` puts each word, in order, within its cue and within the
    speech (none in the silence around it), in the JSON."""
    run_job("transcript", JobInput(pauses, workdir, {"word_timestamps": True}))
    doc = json.loads((workdir / "transcript.json").read_text())
    assert doc["word_timestamps"] is True
    words = [w for s in doc["segments"] for w in s["words"]]
    said = _normalise(mf.SPEECH_SENTENCE).split()
    assert jiwer.wer(" ".join(said), _normalise(" ".join(w["word"] for w in words))) < 0.3
    for seg in doc["segments"]:
        for w in seg["words"]:
            assert seg["start"] <= w["start"] <= w["end"] <= seg["end"], (seg["start"], w)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    start, end = _speech_span(pauses, 8, 8)
    assert all(start - 0.5 <= w["start"] and w["end"] <= end + 0.5 for w in words), words
    plain = run_job("transcript", JobInput(pauses, workdir))
    assert all("words" not in s for s in json.loads(plain.outputs[2].path.read_text())["segments"])


def test_word_timestamps_must_be_boolean(pauses: Path, workdir: Path) -> None:
    """A word_timestamps param that is not true or false is a readable permanent error."""
    with pytest.raises(PermanentJobError, match="word_timestamps must be true or false"):
        run_job("transcript", JobInput(pauses, workdir, {"word_timestamps": "yes"}))


@pytest.mark.slow
def test_windows_cut_at_silence_keep_every_word(tmp_path: Path) -> None:
    """A recording transcribed in short windows gives the same words, at the same times, as in
    one piece: windows end in a pause and cue times carry the window's offset."""
    text = mf.SPEECH_SENTENCE + " " + "She sells sea shells by the sea shore every summer morning."
    src = mf.silence_speech_silence(tmp_path, "two.wav", lead=3, text=text, trail=3, noise=0.0)
    raw = tmp_path / "two.s16le"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), "-f", "s16le", "-ac", "1",
                    "-ar", "16000", str(raw)], check=True)
    engine = transcripts.get_engine()
    options = transcripts.DecodeOptions()
    duration = _ffprobe_duration(src)
    whole = transcripts.transcribe_file(raw, duration, engine, options, lambda f: None)
    pieces = transcripts.transcribe_file(raw, duration, engine, options, lambda f: None,
                                         window_seconds=7)
    offsets = [o for o, _ in transcripts.windows(raw, 7)]
    assert len(offsets) >= 2, offsets
    # The oracle is the text espeak-ng spoke, not the whole-file transcript: tiny.en mishears a word or
    # two of synthetic speech, differently on different CPUs (CTranslate2's kernels), so comparing two
    # transcripts with each other added both runs' mistakes. Windows that dropped or doubled a phrase
    # at a cut would cost several words against the spoken text.
    spoken = _normalise(text)
    pieces_wer = jiwer.wer(spoken, _normalise(pieces.text))
    whole_wer = jiwer.wer(spoken, _normalise(whole.text))
    assert pieces_wer < 0.3, pieces.text
    assert pieces_wer <= whole_wer + 0.1, (pieces.text, whole.text)
    assert len(_normalise(pieces.text).split()) == pytest.approx(len(spoken.split()), abs=2), pieces.text
    assert pieces.segments[0].start >= 3 - CUE_SLACK_SECONDS
    assert pieces.segments[-1].end <= duration


@pytest.mark.slow
def test_batched_inference_hears_the_same(pauses: Path, workdir: Path) -> None:
    """faster-whisper's batched pipeline (operator setting) gets the sentence, inside the speech."""
    result = run_job("transcript", JobInput(pauses, workdir, speech=transcripts.SpeechDefaults(batch_size=4)))
    assert jiwer.wer(_normalise(mf.SPEECH_SENTENCE), _normalise(result.data["text"])) < 0.3
    start, end = _speech_span(pauses, 8, 8)
    doc = json.loads((workdir / "transcript.json").read_text())
    for seg in doc["segments"]:
        assert start - CUE_SLACK_SECONDS <= seg["start"] < seg["end"] <= end + CUE_SLACK_SECONDS, seg


# --------------------------------------------------------------------------- the operator's choice


# whisper.tokenizer reads its vocabulary with open(...).read() and never closes the file.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.slow
def test_operator_settings_choose_engine_and_model(talk: Path, workdir: Path,
                                                   random_whisper_checkpoint: Path) -> None:
    """The engine and model the operator configured are used when the job names none."""
    from contentforge.settings import Settings

    settings = Settings(transcript_engine="openai-whisper",
                        transcript_model=str(random_whisper_checkpoint))
    result = run_job("transcript", JobInput(talk, workdir, {"language": "en"}, speech=speech_defaults(settings)))
    assert result.data["engine"] == "openai-whisper"
    assert result.data["model"] == str(random_whisper_checkpoint)
    assert json.loads((workdir / "transcript.json").read_text())["engine"] == "openai-whisper"
