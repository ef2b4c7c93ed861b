"""Colour of every output: what the source declares, HDR to SDR, and the tags written on outputs.

Video. ffprobe's stream tags (``color_primaries``, ``color_transfer``, ``color_space``,
``color_range``) say what a source is. HLG (``arib-std-b67``) and PQ (``smpte2084``) are HDR: their
H.264 renditions, posters and storyboards are tone-mapped to BT.709 8-bit with zimg (``zscale``) and
ffmpeg's ``tonemap`` (Hable's filmic curve, no desaturation), with the peak stated explicitly so the
result does not depend on ffmpeg's guesses. SDR sources keep their own colour when they declare it
and are tagged BT.709 when they do not. Every rendition carries all four tags (in the frames, in the
H.264 VUI and in the MP4 ``colr`` box), and posters and storyboards are converted to RGB with the
same matrix and range as those tags, so a browser shows poster and video alike.

Still images. HEIF files may describe their colour with an ``nclx`` box (code points of ITU-T H.273)
instead of an ICC profile; :func:`nclx_to_srgb` converts such pixels to sRGB for outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from jobs.errors import PermanentJobError

#: Transfer characteristics (ffprobe names) that mark a stream as HDR.
HDR_TRANSFERS = {"arib-std-b67": "hlg", "smpte2084": "pq"}
#: SDR reference white in cd/m²: linear light 1.0 after ``zscale`` (its ``npl``), the level SDR
#: white is mapped to.
SDR_WHITE_NITS = 100.0
#: Peak of the display HLG is rendered for, in cd/m² (BT.2100's reference HLG display).
HLG_PEAK_NITS = 1000.0
#: Peak assumed for PQ video that carries no light-level metadata, in cd/m²: the most common
#: mastering peak of consumer HDR10 and phone recordings.
PQ_DEFAULT_PEAK_NITS = 1000.0
#: Highest PQ peak believed from metadata, in cd/m² (PQ's own ceiling); above it the tag is a lie.
PQ_MAX_PEAK_NITS = 10000.0
#: Keyword values of the ``{"hdr": ...}`` job parameter.
HDR_MODES = ("tonemap", "keep")

#: Values ``zscale`` accepts for each property, keyed by ffprobe's name.
_ZSCALE_MATRIX = {"bt709": "bt709", "bt2020nc": "2020_ncl", "bt2020c": "2020_cl",
                  "smpte170m": "170m", "bt470bg": "470bg"}
_SCALE_MATRIX = {"bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "bt470",
                 "smpte240m": "smpte240m", "fcc": "fcc", "bt2020nc": "bt2020", "bt2020c": "bt2020"}


@dataclass(frozen=True)
class VideoColour:
    """The four colour properties of a video stream, by ffprobe's names; None when not declared."""

    primaries: str | None = None
    transfer: str | None = None
    matrix: str | None = None
    range: str | None = None
    #: Peak luminance of the content in cd/m², from HDR metadata when the source carries it.
    peak_nits: float | None = None

    @property
    def hdr(self) -> str | None:
        """``"hlg"``, ``"pq"`` or None (SDR)."""
        return HDR_TRANSFERS.get(self.transfer or "")

    def as_dict(self) -> dict[str, Any]:
        return {"primaries": self.primaries, "transfer": self.transfer, "matrix": self.matrix,
                "range": self.range, "hdr": self.hdr, "peak_nits": self.peak_nits}

    @classmethod
    def of(cls, video: dict[str, Any] | None) -> VideoColour:
        """The colour ``jobs.probe`` recorded for a video stream (``MediaInfo.video["colour"]``)."""
        found = dict((video or {}).get("colour") or {})
        found.pop("hdr", None)
        return cls(**found)


#: What an SDR output is tagged when its source says nothing: BT.709, limited range.
BT709 = VideoColour("bt709", "bt709", "bt709", "tv")


def _declared(value: Any) -> str | None:
    return None if value in (None, "", "unknown", "unspecified", "reserved") else str(value)


def _ratio(text: Any) -> float | None:
    try:
        num, _, den = str(text).partition("/")
        return float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None


def from_stream(stream: dict[str, Any]) -> VideoColour:
    """The colour an ffprobe video stream declares, with its HDR peak when metadata gives one."""
    peak = None
    for side in stream.get("side_data_list", []) or []:
        if side.get("side_data_type") == "Content light level metadata" and side.get("max_content"):
            peak = float(side["max_content"])
        elif side.get("side_data_type") == "Mastering display metadata" and peak is None:
            peak = _ratio(side.get("max_luminance"))
    return VideoColour(
        primaries=_declared(stream.get("color_primaries")),
        transfer=_declared(stream.get("color_transfer")),
        matrix=_declared(stream.get("color_space")),
        range=_declared(stream.get("color_range")),
        peak_nits=peak if peak and peak > 0 else None,
    )


def parse_hdr_mode(params: dict[str, Any]) -> str:
    """``"tonemap"`` (the default: SDR renditions only) or ``"keep"`` (also a 10-bit HDR one)."""
    mode = params.get("hdr", "tonemap")
    if mode not in HDR_MODES:
        raise PermanentJobError(f"hdr must be one of {', '.join(HDR_MODES)}, got {mode!r}")
    return str(mode)


def sdr_colour(source: VideoColour) -> VideoColour:
    """What an 8-bit SDR output of ``source`` is tagged: BT.709 for HDR and for anything undeclared;
    otherwise the source's own primaries, transfer and matrix (the pixels are not converted)."""
    if source.hdr:
        return BT709
    return VideoColour(
        primaries=source.primaries or BT709.primaries,
        transfer=source.transfer or BT709.transfer,
        matrix=source.matrix if source.matrix in _SCALE_MATRIX else BT709.matrix,
        range="tv",
    )


def hdr_colour(source: VideoColour) -> VideoColour:
    """What a 10-bit HDR output of ``source`` is tagged: its own transfer, BT.2020 otherwise."""
    return VideoColour(primaries=source.primaries or "bt2020", transfer=source.transfer,
                       matrix=source.matrix or "bt2020nc", range="tv", peak_nits=source.peak_nits)


def x265_params(source: VideoColour) -> str:
    """x265 settings that write the HDR colour (and, for PQ, HDR10 signalling and its light level)
    into the HEVC bitstream of a kept HDR rendition."""
    out = hdr_colour(source)
    params = [f"colorprim={out.primaries}", f"transfer={out.transfer}",
              f"colormatrix={out.matrix}", "range=limited", "log-level=error"]
    if source.hdr == "pq":
        params.append("hdr10=1")
        if source.peak_nits:
            params.append(f"max-cll={round(min(source.peak_nits, PQ_MAX_PEAK_NITS))},0")
    return ":".join(params)


def frame_colour(source: VideoColour) -> VideoColour:
    """The colour of decoded frames after :func:`to_sdr`, before any range conversion: what a
    poster or storyboard is converted to RGB from (the source's own range for SDR, which may be
    full range, as some phones record; BT.709 limited range after tone-mapping)."""
    out = sdr_colour(source)
    if source.hdr or source.range != "pc":
        return out
    return VideoColour(out.primaries, out.transfer, out.matrix, "pc")


def tonemap_peak(source: VideoColour) -> float:
    """The content peak handed to ``tonemap``, relative to SDR white."""
    if source.hdr == "hlg":
        return HLG_PEAK_NITS / SDR_WHITE_NITS
    return min(source.peak_nits or PQ_DEFAULT_PEAK_NITS, PQ_MAX_PEAK_NITS) / SDR_WHITE_NITS


def to_sdr(stream: Any, source: VideoColour, size: tuple[int, int] | None = None) -> Any:
    """Tone-map an HDR ffmpeg-python video node to BT.709 8-bit 4:2:0 (limited range); SDR
    sources pass through untouched.

    ``size`` (``scale``-style width and height, -2 keeping the aspect ratio) resizes in the same
    first step, so a 4K source is tone-mapped at the size of its largest rendition, not at 4K.
    """
    if not source.hdr:
        return stream
    resize = {"w": size[0], "h": size[1]} if size else {}
    return (
        stream.filter("zscale", tin=source.transfer, pin=source.primaries or "bt2020",
                      min=_ZSCALE_MATRIX.get(source.matrix or "", "2020_ncl"),
                      rin="full" if source.range == "pc" else "limited",
                      t="linear", npl=SDR_WHITE_NITS, p="bt709", **resize)
        .filter("format", "gbrpf32le")  # linear BT.709 light in float: what tonemap works on
        .filter("tonemap", tonemap="hable", desat=0, peak=tonemap_peak(source))
        .filter("zscale", t="bt709", m="bt709", r="limited")
        .filter("format", "yuv420p")
    )


def tag(stream: Any, out: VideoColour) -> Any:
    """Stamp ``out`` on every frame (the encoder and muxer copy frame properties into the file)."""
    return stream.filter("setparams", color_primaries=out.primaries, color_trc=out.transfer,
                         colorspace=out.matrix, range=out.range)


def encoder_options(out: VideoColour) -> dict[str, Any]:
    """Output options that write ``out`` into the bitstream (VUI); the MP4 muxer copies them into
    the ``colr`` box."""
    return {"color_primaries": out.primaries, "color_trc": out.transfer, "colorspace": out.matrix,
            "color_range": out.range}


def yuv_scale_options(source: VideoColour) -> dict[str, Any]:
    """``scale`` options for a rendition of ``source``: full-range frames (as some phones and
    JPEG-style codecs record) are brought to the limited range every rendition is tagged with."""
    return {"in_range": "full" if frame_colour(source).range == "pc" else "limited",
            "out_range": "limited"}


def rgb_scale_options(out: VideoColour) -> dict[str, Any]:
    """``scale`` options that convert frames tagged ``out`` to full-range RGB with the same matrix
    and range a player uses for the rendition (swscale otherwise assumes BT.601)."""
    return {"in_color_matrix": _SCALE_MATRIX.get(out.matrix or "", "bt709"),
            "in_range": "full" if out.range == "pc" else "limited", "out_range": "full"}


def jpeg_scale_options(out: VideoColour) -> dict[str, Any]:
    """``scale`` options from frames tagged ``out`` to JPEG's full-range BT.601 Y'CbCr."""
    return {**rgb_scale_options(out), "out_color_matrix": "bt601"}


# --------------------------------------------------------------------------- still images (nclx)

#: Chromaticities (x, y) of red, green, blue and white for H.273 colour primaries code points.
_PRIMARIES: dict[int, tuple[tuple[float, float], ...]] = {
    1: ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), (0.3127, 0.3290)),   # BT.709 / sRGB
    5: ((0.640, 0.330), (0.290, 0.600), (0.150, 0.060), (0.3127, 0.3290)),   # BT.470 BG (PAL)
    6: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), (0.3127, 0.3290)),   # SMPTE 170M (NTSC)
    9: ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), (0.3127, 0.3290)),   # BT.2020
    12: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.3127, 0.3290)),  # Display P3 (D65)
}
#: H.273 transfer code points of the SDR curves decoded here; 16 (PQ) and 18 (HLG) are tone-mapped
#: like video (:func:`_hdr_to_linear`); others are left as they are.
_SRGB_LIKE = {13}
_BT709_LIKE = {1, 6, 14, 15}
_GAMMA = {4: 2.2, 5: 2.8, 8: 1.0}


def _rgb_to_xyz(primaries: tuple[tuple[float, float], ...]) -> np.ndarray:
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries[:3]]).T
    wx, wy = primaries[3]
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return xyz * np.linalg.solve(xyz, white)


def _decode_transfer(code: int, v: np.ndarray) -> np.ndarray | None:
    if code in _SRGB_LIKE or code == 2:  # 2 = unspecified: sRGB is what an image viewer assumes
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    if code in _BT709_LIKE:
        return np.where(v < 0.081, v / 4.5, ((v + 0.099) / 1.099) ** (1 / 0.45))
    if code in _GAMMA:
        return v ** _GAMMA[code]
    return None


def _hable(x: np.ndarray | float) -> np.ndarray | float:
    """John Hable's filmic curve with the constants ffmpeg's ``tonemap=hable`` uses."""
    a, b, c, d, e, f = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
    return (x * (x * a + b * c) + d * e) / (x * (x * a + b) + d * f) - e / f


def _hdr_to_linear(code: int, v: np.ndarray) -> tuple[np.ndarray, float] | None:
    """PQ or HLG signal to tone-mapped linear light (1.0 = SDR white), before the primaries change:
    the same steps as the video path (zimg's linearisation, then ``tonemap=hable`` on the largest
    component with the peak of :func:`tonemap_peak`)."""
    if code == 16:  # SMPTE ST 2084 EOTF, in cd/m²
        m1, m2 = 2610 / 16384, 2523 / 4096 * 128
        c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
        p = v ** (1 / m2)
        nits = 10000.0 * (np.maximum(p - c1, 0) / (c2 - c3 * p)) ** (1 / m1)
        peak = PQ_DEFAULT_PEAK_NITS / SDR_WHITE_NITS
    elif code == 18:  # BT.2100 HLG inverse OETF, then the 1000 cd/m² display's gamma 1.2
        a = 0.17883277
        b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
        scene = np.where(v <= 0.5, v * v / 3, (np.exp((v - c) / a) + b) / 12)
        nits = HLG_PEAK_NITS * scene**1.2
        peak = HLG_PEAK_NITS / SDR_WHITE_NITS
    else:
        return None
    return nits / SDR_WHITE_NITS, peak


def _tonemap(linear: np.ndarray, peak: float) -> np.ndarray:
    sig = np.maximum(linear.max(axis=-1, keepdims=True), 1e-6)
    return linear * (_hable(sig) / _hable(peak)) / sig


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def nclx_to_srgb(im: Image.Image, nclx: dict[str, Any]) -> tuple[Image.Image, bool]:
    """Convert RGB(A) pixels described by an ``nclx`` box to sRGB; ``(image, converted)``.

    PQ and HLG pictures are tone-mapped as video is. Already-sRGB descriptions (BT.709 or
    unspecified primaries with the sRGB curve) and descriptions not handled here (unknown primaries
    or transfers) are returned unchanged, with ``False`` for the latter so callers can say so.
    """
    primaries = int(nclx.get("color_primaries", 2))
    transfer = int(nclx.get("transfer_characteristics", 2))
    if primaries in (1, 2) and transfer in (_SRGB_LIKE | {2}):
        return im, True
    if (primaries not in _PRIMARIES and primaries != 2) or im.mode not in ("RGB", "RGBA"):
        return im, False
    rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    hdr = _hdr_to_linear(transfer, rgb)
    linear = hdr[0] if hdr is not None else _decode_transfer(transfer, rgb)
    if linear is None:
        return im, False
    source = _PRIMARIES.get(primaries, _PRIMARIES[1])
    matrix = np.linalg.solve(_rgb_to_xyz(_PRIMARIES[1]), _rgb_to_xyz(source))
    linear = linear @ matrix.T
    if hdr is not None:
        linear = _tonemap(linear, hdr[1])
    out = _srgb_encode(linear)
    converted = Image.fromarray(np.round(out * 255.0).astype(np.uint8), "RGB")
    if im.mode == "RGBA":
        converted.putalpha(im.getchannel("A"))
    return converted, True
