"""The parameters each job type accepts: one typed schema per job type, checked twice.

``enqueue_asset_job`` checks a job's parameters against the copy of these schemas that migration
0014 keeps in ``app_private.job_params`` (so a caller of plain SQL gets SQLSTATE 22023 at once),
and :func:`jobs.run_job` checks them again here before a job function sees them (a row written
some other way fails its job with the same readable message). A test keeps the two copies equal.

A job's parameters come from the tenant that enqueued it, so every field that costs work has a
bound, named below for what it guards. What the operator decides (the speech engine and model,
from ``CONTENTFORGE_TRANSCRIPT_ENGINE`` / ``CONTENTFORGE_TRANSCRIPT_MODEL``) is not a parameter:
the worker passes it to the job function itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jobs.errors import PermanentJobError
from jobs.images import MAX_VARIANT_COUNT, MAX_VARIANT_WIDTH
from jobs.noop import MAX_NOOP_OUTPUT_BYTES, MAX_NOOP_SLEEP_SECONDS

Kind = Literal["boolean", "integer", "number", "string", "integer_list", "string_list"]

# MAX_VARIANT_WIDTH and MAX_VARIANT_COUNT (jobs.images) bound a thumbnail ladder.
#: Most video renditions per transcode job: each rendition is one more full encode of the video.
MAX_RENDITIONS_PER_JOB = 4
#: Rendition heights, in pixels: below 144p nothing is legible, above 2160p (4K) is not served.
MIN_RENDITION_HEIGHT = 144
MAX_RENDITION_HEIGHT = 2160
#: Loudness target range, in LUFS (EBU R128 loudnorm's own range is -70 to -5).
MIN_LOUDNESS_LUFS = -70
MAX_LOUDNESS_LUFS = -5
#: A transcript language is an ISO 639-1 (2 letters) or 639-2 (3 letters) code.
MIN_LANGUAGE_CODE_LENGTH = 2
MAX_LANGUAGE_CODE_LENGTH = 3

#: Longest object version a Supabase Storage ingest names, in characters (storage versions are UUIDs).
MAX_SOURCE_VERSION_LENGTH = 200

#: Longest noop tag, in characters (the tag only has to tell jobs apart).
MAX_NOOP_TAG_LENGTH = 200

IMAGE_FORMATS = ("webp", "avif", "jpeg")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


@dataclass(frozen=True)
class Field:
    """One parameter: its type and bounds. For strings the bounds are on the length; for lists
    ``max_items`` bounds the list and ``minimum``/``maximum``/``choices`` each item."""

    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    max_items: int | None = None
    choices: tuple[str, ...] | None = None
    #: The named limit a message cites when the value is out of bounds.
    limit: str | None = None


_WIDTHS = Field("integer_list", 16, MAX_VARIANT_WIDTH, MAX_VARIANT_COUNT, limit="MAX_VARIANT_WIDTH, MAX_VARIANT_COUNT")
_FORMATS = Field("string_list", max_items=len(IMAGE_FORMATS), choices=IMAGE_FORMATS)
_LOUDNESS = Field("number", MIN_LOUDNESS_LUFS, MAX_LOUDNESS_LUFS, limit="MIN_LOUDNESS_LUFS, MAX_LOUDNESS_LUFS")
#: The storage object version a job processes (set by the Supabase Storage ingest trigger, migration
#: 0017): a new version of the same object gets new jobs.
_SOURCE_VERSION = Field("string", 1, MAX_SOURCE_VERSION_LENGTH, limit="MAX_SOURCE_VERSION_LENGTH")

#: Job type -> parameter name -> field. A job type missing here takes no parameters.
PARAMS: dict[str, dict[str, Field]] = {
    "metadata": {"source_version": _SOURCE_VERSION},
    "optimize": {"source_version": _SOURCE_VERSION},
    "thumbnail": {
        "source_version": _SOURCE_VERSION,
        "widths": _WIDTHS,
        "formats": _FORMATS,
        "storyboard": Field("boolean"),
        # Animated images: also an MP4 and a WebM (default true).
        "animation": Field("boolean"),
    },
    "transcode": {
        "source_version": _SOURCE_VERSION,
        "renditions": Field("integer_list", MIN_RENDITION_HEIGHT, MAX_RENDITION_HEIGHT, MAX_RENDITIONS_PER_JOB,
                            limit="MAX_RENDITIONS_PER_JOB, MIN_RENDITION_HEIGHT, MAX_RENDITION_HEIGHT"),
        "preset": Field("string", choices=X264_PRESETS),
        "normalize_audio": Field("boolean"),
        "loudness_lufs": _LOUDNESS,
        "hls": Field("boolean"),
        # HLS: also write master_with_transcript.m3u8 (default: when there is a soundtrack).
        "subtitles": Field("boolean"),
        # HDR sources: "tonemap" (SDR renditions only, the default) or "keep" (also a 10-bit HDR one);
        # the same values as jobs.colour.HDR_MODES.
        "hdr": Field("string", choices=("tonemap", "keep")),
    },
    "transcript": {
        "source_version": _SOURCE_VERSION,
        "language": Field("string", MIN_LANGUAGE_CODE_LENGTH, MAX_LANGUAGE_CODE_LENGTH,
                          limit="MIN_LANGUAGE_CODE_LENGTH, MAX_LANGUAGE_CODE_LENGTH"),
        # Word-level start and end times in transcript.json (default false).
        "word_timestamps": Field("boolean"),
    },
    "noop": {
        "sleep_seconds": Field("number", 0, MAX_NOOP_SLEEP_SECONDS, limit="MAX_NOOP_SLEEP_SECONDS"),
        "fail": Field("string", choices=("permanent", "transient")),
        "crash": Field("boolean"),
        # Free text that makes otherwise identical noop jobs distinct (benchmarks, soak runs).
        "tag": Field("string", 1, MAX_NOOP_TAG_LENGTH, limit="MAX_NOOP_TAG_LENGTH"),
        # One output file of random bytes (noop.bin): each attempt's differs (tests of fenced outputs).
        "output_bytes": Field("integer", 0, MAX_NOOP_OUTPUT_BYTES, limit="MAX_NOOP_OUTPUT_BYTES"),
    },
}


def _bounds(f: Field) -> str:
    lo = "" if f.minimum is None else f"{f.minimum:g}"
    hi = "" if f.maximum is None else f"{f.maximum:g}"
    return f"between {lo} and {hi}" if lo and hi else (f"at least {lo}" if lo else f"at most {hi}")


def _limit(f: Field) -> str:
    return f" ({f.limit})" if f.limit else ""


def _is_int(v: Any) -> bool:
    # Only a JSON integer: the job functions take 320, not 320.0 (the SQL copy checks the same).
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_scalar(job_type: str, name: str, f: Field, v: Any, item: bool) -> None:
    what = f"{job_type} parameter {name}" + (" item" if item else "")
    kind = f.kind.removesuffix("_list") if item else f.kind
    if kind == "boolean":
        if not isinstance(v, bool):
            raise PermanentJobError(f"{what} must be true or false, got {v!r}")
    elif kind in ("integer", "number"):
        if not (_is_int(v) if kind == "integer" else _is_number(v)):
            raise PermanentJobError(f"{what} must be {'an integer' if kind == 'integer' else 'a number'}, got {v!r}")
        if (f.minimum is not None and v < f.minimum) or (f.maximum is not None and v > f.maximum):
            raise PermanentJobError(f"{what} must be {_bounds(f)}{_limit(f)}, got {v!r}")
    elif kind == "string":
        if not isinstance(v, str):
            raise PermanentJobError(f"{what} must be a string, got {v!r}")
        if f.choices is not None and v not in f.choices:
            raise PermanentJobError(f"{what} must be one of {', '.join(f.choices)}, got {v!r}")
        if (f.minimum is not None and len(v) < f.minimum) or (f.maximum is not None and len(v) > f.maximum):
            raise PermanentJobError(f"{what} must be {_bounds(f)} characters long{_limit(f)}, got {v!r}")


def check_params(job_type: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`PermanentJobError` naming the field and the limit when ``params`` breaks the
    job type's schema (an unknown field included)."""
    if not isinstance(params, Mapping):
        raise PermanentJobError(f"{job_type} parameters must be a JSON object")
    fields = PARAMS.get(job_type, {})
    for name in sorted(params):
        value = params[name]
        f = fields.get(name)
        if f is None:
            allowed = ", ".join(sorted(fields)) or "none"
            raise PermanentJobError(f"{job_type} jobs take no parameter {name!r} (allowed: {allowed})")
        if f.kind.endswith("_list"):
            if not isinstance(value, list) or not value:
                raise PermanentJobError(f"{job_type} parameter {name} must be a non-empty list, got {value!r}")
            if f.max_items is not None and len(value) > f.max_items:
                raise PermanentJobError(f"{job_type} parameter {name} may have at most {f.max_items} items"
                                        f"{_limit(f)}, got {len(value)}")
            for item in value:
                _check_scalar(job_type, name, f, item, True)
        else:
            _check_scalar(job_type, name, f, value, False)
