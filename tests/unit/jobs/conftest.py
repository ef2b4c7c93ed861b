"""Fixtures for the media job tests: generated media (made once per session) and a work dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.limits import MediaLimits
from tests import media_factories as mf


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide directory of generated media files."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media: Path) -> Path:
    """A 4 s 320x240 H.264/AAC clip whose first 1.5 s are black."""
    return mf.video(media, "clip.mp4", seconds=4, black_seconds=1.5)


@pytest.fixture(scope="session")
def tone(media: Path) -> Path:
    """A quiet 4 s MP3 tone with a louder middle."""
    return mf.audio(media, "tone.mp3")


@pytest.fixture(scope="session")
def talk(media: Path) -> Path:
    """A small video with espeak-ng saying ``mf.SPEECH_SENTENCE``."""
    return mf.speech_video(media, "talk.mp4")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory for a job's outputs."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def limits() -> MediaLimits:
    """The documented default limits."""
    return MediaLimits()


class Recorder:
    """A progress callback that remembers every fraction."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def __call__(self, fraction: float) -> None:
        self.values.append(fraction)


@pytest.fixture
def progress() -> Recorder:
    """A progress callback that records what it is told."""
    return Recorder()
