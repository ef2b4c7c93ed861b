"""The frozen records a job function returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Called with a fraction between 0.0 and 1.0 as a job advances. Must be cheap and never raise.
Progress = Callable[[float], None]


def no_progress(_fraction: float) -> None:
    """A progress callback that ignores every report."""


@dataclass(frozen=True)
class OutputFile:
    """One file a job produced in its work directory.

    ``name`` is the variant's file name, unique across all job types of one asset
    (``thumb_320.webp``, ``video_720p.mp4``, ``transcript.vtt``): the worker stores it under a key of
    its attempt, ``{tenant}/{asset}/attempts/{claim token}/variants/{name}``, and the asset's row
    names the current one.
    """

    name: str
    path: Path
    format: str
    content_type: str
    bytes: int
    width: int | None = None
    height: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AssetFields:
    """What a job records on its asset besides its files (the worker writes them to the asset row
    in the transaction that completes the job); the defaults write nothing."""

    #: Replaces the asset's ``metadata`` when not empty (JSON-serialisable).
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: The asset's ``duration_seconds``, when known.
    duration_seconds: float | None = None
    #: (text, language) of the asset's transcript; None leaves the transcript as it is.
    transcript: tuple[str | None, str | None] | None = None


@dataclass(frozen=True)
class JobResult:
    """What a job function returns: its files, a JSON-serialisable record, and what the asset gets."""

    outputs: tuple[OutputFile, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    asset: AssetFields = field(default_factory=AssetFields)
