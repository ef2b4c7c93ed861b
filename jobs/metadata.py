"""The metadata job: what a file is, from its content, stored as ``assets.metadata``.

For every file: MIME type (sniffed, never from the name), kind, size and SHA-256. For images the
header alone is read (dimensions, format, orientation, alpha, animation frames, an EXIF summary);
for audio and video, ffprobe with the sniffed demuxer forced. Nothing is decoded. GPS coordinates
are never copied into the record, only whether the original carries them: the record is readable
by every member of the tenant, the location of a photo is not theirs to see.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image

from jobs import probe
from jobs.job_input import JobInput
from jobs.limits import MediaLimits
from jobs.result import AssetFields, JobResult, Progress

_HASH_CHUNK = 1024 * 1024

#: EXIF tags copied into the summary (base IFD and Exif sub-IFD), by their record key.
_EXIF_BASE = {"make": ExifTags.Base.Make, "model": ExifTags.Base.Model,
              "software": ExifTags.Base.Software}
_EXIF_SUB = {"taken_at": ExifTags.Base.DateTimeOriginal, "exposure_time": ExifTags.Base.ExposureTime,
             "f_number": ExifTags.Base.FNumber, "iso": ExifTags.Base.ISOSpeedRatings,
             "focal_length": ExifTags.Base.FocalLength, "lens_model": ExifTags.Base.LensModel}


def sha256_of(path: Path, progress: Progress, share: float) -> str:
    digest = hashlib.sha256()
    total = max(1, path.stat().st_size)
    done = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(chunk)
            done += len(chunk)
            progress(share * done / total)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip("\x00 ") or None
    if isinstance(value, str):
        return value.strip("\x00 ") or None
    if isinstance(value, (int, bool)):
        return value
    try:
        return round(float(value), 6)  # IFDRational and friends
    except (TypeError, ValueError, ZeroDivisionError):
        return str(value)


def exif_summary(im: Image.Image) -> dict[str, Any]:
    exif = im.getexif()
    summary: dict[str, Any] = {}
    for key, tag in _EXIF_BASE.items():
        if tag in exif:
            summary[key] = _jsonable(exif[tag])
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    for key, tag in _EXIF_SUB.items():
        if tag in sub:
            summary[key] = _jsonable(sub[tag])
    summary["has_gps"] = bool(exif.get_ifd(ExifTags.IFD.GPSInfo))
    return {k: v for k, v in summary.items() if v is not None}


def image_fields(path: Path, limits: MediaLimits, sniffed: probe.Sniffed) -> dict[str, Any]:
    _verify(path, limits, sniffed)
    with probe.open_image(path, limits, sniffed) as im:
        width, height = im.size
        orientation = int(im.getexif().get(ExifTags.Base.Orientation, 1))
        frames = int(getattr(im, "n_frames", 1))
        has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
        rotated = orientation in (5, 6, 7, 8)
        return {
            "width": width,
            "height": height,
            "display_width": height if rotated else width,
            "display_height": width if rotated else height,
            "format": im.format,
            "mode": im.mode,
            "orientation": orientation,
            "has_alpha": has_alpha,
            "frames": frames,
            "animated": frames > 1 and im.format != "HEIF",  # HEIF: a burst of stills
            "has_icc_profile": "icc_profile" in im.info,
            "exif": exif_summary(im),
        }


def _verify(path: Path, limits: MediaLimits, sniffed: probe.Sniffed) -> None:
    """Check the image's structure (chunk CRCs, truncation) without decoding its pixels."""
    with probe.open_image(path, limits, sniffed) as im, probe.decoding("image"):
        im.verify()


def media_fields(info: probe.MediaInfo) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "duration": info.duration,
        "container": info.container,
        "bit_rate": info.bit_rate,
    }
    if info.video:
        fields["video"] = info.video
        fields["width"] = info.video["display_width"]
        fields["height"] = info.video["display_height"]
        fields["frame_rate"] = info.video["frame_rate"]
    if info.audio:
        fields["audio"] = info.audio
        fields["channels"] = info.audio["channels"]
        fields["sample_rate"] = info.audio["sample_rate"]
    return fields


def run(inp: JobInput) -> JobResult:
    source, limits, progress = inp.source, inp.limits, inp.progress
    size = probe.check_source(source, limits)
    sniffed = probe.sniff(source)
    data: dict[str, Any] = {"size_bytes": size, "sha256": sha256_of(source, progress, 0.8)}
    if sniffed.kind == "image" and sniffed.decoder in probe.ALLOWED_IMAGE_FORMATS:
        data.update(image_fields(source, limits, sniffed))
    elif sniffed.kind in ("audio", "video"):
        info = probe.probe_media(source, limits, sniffed)
        sniffed = info.sniffed  # an MP4 with sound only is audio
        data.update(media_fields(info))
    elif sniffed.kind == "image":
        data["decodable"] = False  # an image format we do not decode: name and hash only
    data = {"mime_type": sniffed.mime, "kind": sniffed.kind, **data}
    progress(1.0)
    duration = data.get("duration")
    return JobResult(data=data, asset=AssetFields(
        metadata=data, duration_seconds=float(duration) if isinstance(duration, (int, float)) else None))
