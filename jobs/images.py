"""Image variants: a width ladder in WebP, AVIF and JPEG, a blurhash and the dominant colour.

Every output is upright (EXIF orientation applied) and carries no metadata at all: no EXIF (GPS
above all), no XMP, no comments. Colour profiles are converted to sRGB, then dropped. Nothing is
ever upscaled. JPEG sources are decoded with ``Image.draft()`` at the smallest DCT scale that still
covers the largest variant, which is what makes a 24 MP photo cheap.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import blurhash
from PIL import Image, ImageCms, ImageOps, ImageStat

from jobs import animation, colour, probe
from jobs.errors import PermanentJobError
from jobs.job_input import JobInput
from jobs.limits import MediaLimits
from jobs.result import JobResult, OutputFile, Progress

#: Default variant widths in pixels (imgproxy/Cloudinary-style breakpoints for srcset).
DEFAULT_WIDTHS: tuple[int, ...] = (160, 320, 640, 1280, 1920)
#: Widest variant anyone may ask for: bounds encode time and memory.
MAX_VARIANT_WIDTH = 4096
#: Most variant widths one job may ask for.
MAX_VARIANT_COUNT = 12
DEFAULT_FORMATS: tuple[str, ...] = ("webp", "avif", "jpeg")

_EXT = {"webp": "webp", "avif": "avif", "jpeg": "jpg", "png": "png"}
_CONTENT_TYPE = {
    "webp": "image/webp", "avif": "image/avif", "jpeg": "image/jpeg", "png": "image/png"
}
#: Encoder settings per format. AVIF speed 8 keeps encode time near WebP's at a small size cost.
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "webp": {"format": "WEBP", "quality": 80, "method": 4},
    "avif": {"format": "AVIF", "quality": 60, "speed": 8},
    "jpeg": {"format": "JPEG", "quality": 82, "optimize": True, "progressive": True},
    "png": {"format": "PNG", "optimize": True},
}
_SRGB = ImageCms.createProfile("sRGB")
#: A frame darker than this mean luma (0-255), or flatter than this standard deviation, shows
#: nothing: an animation's poster is its first frame that is neither.
BLANK_MEAN_LUMA = 24.0
FLAT_LUMA_STDDEV = 6.0


def parse_widths(params: dict[str, Any], default: Sequence[int] = DEFAULT_WIDTHS) -> list[int]:
    """The ladder asked for in ``params["widths"]``, validated, widest first."""
    raw = params.get("widths", default)
    if not isinstance(raw, (list, tuple)) or not raw or len(raw) > MAX_VARIANT_COUNT:
        raise PermanentJobError(f"widths must be a list of 1 to {MAX_VARIANT_COUNT} integers")
    widths = []
    for w in raw:
        if not isinstance(w, int) or isinstance(w, bool) or not 16 <= w <= MAX_VARIANT_WIDTH:
            raise PermanentJobError(
                f"each width must be an integer between 16 and {MAX_VARIANT_WIDTH}, got {w!r}"
            )
        widths.append(w)
    return sorted(set(widths), reverse=True)


def parse_formats(params: dict[str, Any]) -> list[str]:
    raw = params.get("formats", DEFAULT_FORMATS)
    if not isinstance(raw, (list, tuple)) or not raw:
        raise PermanentJobError("formats must be a non-empty list")
    bad = [f for f in raw if f not in ("webp", "avif", "jpeg")]
    if bad:
        raise PermanentJobError(f"unknown image format(s) {bad}; use webp, avif or jpeg")
    return list(dict.fromkeys(raw))


def ladder(source_width: int, widths: Sequence[int]) -> list[int]:
    """Widths of the ladder that fit the source, widest first, never upscaled. When the source
    is narrower than some step, its own width is the top variant (a 1900 px photo gets 1900,
    1280, ...), so high-density screens get every pixel there is."""
    fitting = sorted({w for w in widths if w <= source_width}, reverse=True)
    if source_width not in fitting and any(w > source_width for w in widths):
        fitting.insert(0, source_width)
    return fitting


def _display_size(im: Image.Image) -> tuple[int, int]:
    orientation = im.getexif().get(0x0112, 1)
    w, h = im.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _to_srgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA"):
        return im
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, src, _SRGB, outputMode=im.mode) or im
    except (ImageCms.PyCMSError, OSError):
        return im  # an unreadable profile: keep the pixels as they are


def is_blank(im: Image.Image) -> bool:
    """True for a frame that shows nothing: nearly black, or one flat colour (fades, slates)."""
    gray = _flatten(im.convert("RGBA") if im.mode not in ("RGB", "RGBA") else im).convert("L")
    gray.thumbnail((160, 160))
    stat = ImageStat.Stat(gray)
    return stat.mean[0] < BLANK_MEAN_LUMA or stat.stddev[0] < FLAT_LUMA_STDDEV


def first_shown_frame(im: Image.Image) -> int:
    """Index of the first frame of an animation that is not blank (0 when all are)."""
    for i in range(getattr(im, "n_frames", 1)):
        with probe.decoding("animation frame"):
            im.seek(i)
            blank = is_blank(im)
        if not blank:
            return i
    return 0


def load_upright(im: Image.Image, max_width: int | None, frame: int = 0) -> Image.Image:
    """Decode ``im`` (its frame ``frame`` when animated) upright in RGB(A), at least
    ``max_width`` wide when it is wider than that.

    For JPEG, ``draft`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale directly.
    """
    dw, _dh = _display_size(im)
    if im.format == "JPEG" and max_width and max_width < dw:
        scale = max_width / dw
        w, h = im.size
        im.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
    with probe.decoding("image"):
        if getattr(im, "is_animated", False) and im.format != "HEIF":
            im.seek(frame)  # a HEIF file opens on its primary image (burst, Live Photo): stay there
        im.load()
        has_alpha = im.mode in ("RGBA", "LA", "PA") or (
            im.mode == "P" and "transparency" in im.info
        )
        icc = im.info.get("icc_profile")
        nclx = im.info.get("nclx_profile")
        upright = ImageOps.exif_transpose(im) or im
        upright = upright.convert("RGBA" if has_alpha else "RGB")
        if icc:
            upright.info["icc_profile"] = icc
            upright = _to_srgb(upright)
        elif isinstance(nclx, dict):  # HEIF colour as H.273 code points instead of a profile
            upright, _converted = colour.nclx_to_srgb(upright, nclx)
    upright.info = {}
    return upright


def _flatten(im: Image.Image) -> Image.Image:
    if im.mode != "RGBA":
        return im
    background = Image.new("RGB", im.size, (255, 255, 255))
    background.paste(im, mask=im.getchannel("A"))
    return background


def save(im: Image.Image, path: Path, fmt: str) -> None:
    """Encode ``im`` with no metadata at all."""
    if fmt == "jpeg":
        im = _flatten(im)
    im.info = {}
    im.save(path, **_SAVE_OPTIONS[fmt])


def placeholder(im: Image.Image) -> tuple[str, str]:
    """The blurhash (4x3 components) and the dominant colour (``#rrggbb``) of ``im``."""
    small = _flatten(im).copy()
    small.thumbnail((32, 32), Image.Resampling.BILINEAR)
    raw = small.tobytes()
    w = small.width
    rows = [
        [raw[(y * w + x) * 3: (y * w + x) * 3 + 3] for x in range(w)] for y in range(small.height)
    ]
    hash_ = blurhash.encode(rows, components_x=4, components_y=3)
    quantized = small.quantize(colors=5, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    _count, index = max(quantized.getcolors() or [(1, 0)])
    index = int(index)  # type: ignore[call-overload]  # palette images report int indexes
    r, g, b = palette[index * 3: index * 3 + 3]
    return hash_, f"#{r:02x}{g:02x}{b:02x}"


def write_ladder(
    base: Image.Image,
    workdir: Path,
    prefix: str,
    widths: Sequence[int],
    formats: Sequence[str],
    limits: MediaLimits,
    progress: Progress,
    progress_span: tuple[float, float] = (0.0, 1.0),
) -> list[OutputFile]:
    """Write ``{prefix}_{width}.{ext}`` for every width of the ladder and every format.

    Each width is resized from the next wider one (never more than about 2x at a time), so the
    whole ladder costs little more than its widest step.
    """
    outputs: list[OutputFile] = []
    steps = ladder(base.width, widths)
    current = base
    lo, hi = progress_span
    done, total = 0, len(steps) * len(formats)
    for width in steps:
        height = max(1, round(base.height * width / base.width))
        if current.size != (width, height):
            current = current.resize(
                (width, height), Image.Resampling.LANCZOS, reducing_gap=3.0
            )
        for fmt in formats:
            name = f"{prefix}_{width}.{_EXT[fmt]}"
            path = workdir / name
            save(current, path, fmt)
            size = path.stat().st_size
            if size > limits.max_output_bytes:
                raise PermanentJobError(f"{name} is above the output size limit")
            outputs.append(
                OutputFile(name, path, fmt, _CONTENT_TYPE[fmt], size, width=width, height=height)
            )
            done += 1
            progress(lo + (hi - lo) * done / total)
    return outputs


def run_thumbnail(inp: JobInput, sniffed: probe.Sniffed) -> JobResult:
    """Variants of an image original (see the module docstring). An animated image's variants
    show its first frame that is not blank, and it also gets ``animation.mp4`` and
    ``animation.webm`` (``jobs.animation``) unless ``params["animation"]`` is false."""
    source, workdir, params, limits, progress = inp.source, inp.workdir, inp.params, inp.limits, inp.progress
    widths = parse_widths(params)
    formats = parse_formats(params)
    want_video = params.get("animation", True)
    if not isinstance(want_video, bool):
        raise PermanentJobError("animation must be true or false")
    extra: dict[str, Any] = {}
    video_outputs: list[OutputFile] = []
    with probe.open_image(source, limits, sniffed) as im:
        display = _display_size(im)
        animated = animation.is_animated(im)
        frame = first_shown_frame(im) if animated else 0
        if animated and want_video:
            video_outputs, extra["animation"] = animation.encode(
                im, workdir, limits, source.stat().st_size
            )
        base = load_upright(im, max(ladder(display[0], widths)), frame)
    if animated:
        extra["poster_frame"] = frame
    progress(0.2)
    outputs = write_ladder(base, workdir, "thumb", widths, formats, limits, progress, (0.2, 0.95))
    outputs += video_outputs
    hash_, colour = placeholder(base)
    progress(1.0)
    return JobResult(
        outputs=tuple(outputs),
        data={
            "source": "image",
            "width": display[0],
            "height": display[1],
            "blurhash": hash_,
            "dominant_color": colour,
            "variants": len(outputs),
            **extra,
        },
    )
