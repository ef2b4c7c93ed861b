"""The optimize job: a lighter copy of a heavy image original, when it is visually the same.

The original is never touched: the job writes ``optimized.{jpg,png,webp}`` (same format as the
original, so it can stand in for it anywhere) only when the recompressed file is at least
``MIN_SAVING`` smaller and its PSNR against the original is at least ``MIN_PSNR_DB``. The copy is
upright (EXIF orientation applied) and carries no metadata, like every other output.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageStat

from jobs import images, probe
from jobs.job_input import JobInput
from jobs.result import JobResult, OutputFile

FILE_TYPES = frozenset({"image"})
#: Smallest saving worth a second copy: 10 % of the original's size.
MIN_SAVING = 0.10
#: Lowest PSNR (dB, over RGB) still "visually equivalent" for photographs; 40 dB is the usual
#: threshold above which differences are not visible at normal viewing distance.
MIN_PSNR_DB = 40.0
JPEG_QUALITY = 85

_FORMATS = {
    "JPEG": ("jpeg", "optimized.jpg", "image/jpeg"),
    "PNG": ("png", "optimized.png", "image/png"),
    "WEBP": ("webp", "optimized.webp", "image/webp"),
}


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio of ``b`` against ``a`` in dB (infinite when identical)."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    mse = sum(v * v for v in ImageStat.Stat(diff).rms) / 3
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def _encode(im: Image.Image, path: Path, fmt: str) -> None:
    im.info = {}
    if fmt == "jpeg":
        im.save(path, format="JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    elif fmt == "webp":
        im.save(path, format="WEBP", quality=90, method=5)
    else:
        im.save(path, format="PNG", optimize=True)


def run(inp: JobInput) -> JobResult:
    source, workdir, limits, progress = inp.source, inp.workdir, inp.limits, inp.progress
    original_bytes = probe.check_source(source, limits)
    sniffed = probe.sniff(source)
    probe.require_kind(sniffed, FILE_TYPES, "optimize")
    target = _FORMATS.get(sniffed.decoder or "")
    with probe.open_image(source, limits, sniffed) as im:
        if target is None or getattr(im, "is_animated", False):
            return JobResult(data={"optimized": False,
                                   "reason": f"{sniffed.mime} originals are kept as they are"})
        upright = images.load_upright(im, None)
    progress(0.3)
    fmt, name, content_type = target
    path = workdir / name
    with probe.decoding("image"):
        _encode(upright, path, fmt)
        size = path.stat().st_size
        progress(0.7)
        with Image.open(path) as again:
            quality = psnr(upright, again)
    saving = 1 - size / original_bytes
    data: dict[str, Any] = {
        "original_bytes": original_bytes,
        "optimized_bytes": size,
        "saving": round(saving, 4),
        "psnr_db": None if math.isinf(quality) else round(quality, 2),
    }
    progress(1.0)
    if saving < MIN_SAVING or quality < MIN_PSNR_DB:
        path.unlink()
        reason = ("saving below 10 %" if saving < MIN_SAVING
                  else f"PSNR {quality:.1f} dB below {MIN_PSNR_DB:g} dB")
        return JobResult(data={**data, "optimized": False, "reason": reason})
    output = OutputFile(name, path, fmt, content_type, size, width=upright.width,
                        height=upright.height, extra={"psnr_db": data["psnr_db"]})
    return JobResult(outputs=(output,), data={**data, "optimized": True})
