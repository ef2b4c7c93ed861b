"""Know what a file is before any decoder touches it.

``sniff`` reads the first bytes and names the format from its signature (never from the file name).
The signature table is also the allowlist: only formats named here with a decoder (``pillow`` or
``demuxer``) are ever decoded. ``probe_media`` then asks ffprobe, with the sniffed demuxer forced,
and checks streams, codecs, duration and dimensions against ``MediaLimits``. ``open_image`` reads
an image's header, checks its dimensions and frame count, and only then lets Pillow decode it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pillow_heif
from PIL import Image

from jobs import colour, ffmpeg
from jobs.errors import PermanentJobError, TransientJobError
from jobs.limits import MediaLimits

#: How many leading bytes ``sniff`` reads: enough for every signature below.
SNIFF_BYTES = 4096

#: Image formats Pillow may decode. Everything else Pillow knows (PSD, EPS through Ghostscript,
#: ICNS, FITS, ...) is refused: fewer decoders, fewer bugs an upload can reach.
ALLOWED_IMAGE_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "AVIF", "TIFF", "HEIF", "BMP"})

# HEIC/HEIF through pillow-heif (libheif + libde265). Embedded thumbnails, depth maps and auxiliary
# images are never read: only the primary image is decoded, with its own header checked first.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
#: Largest HEIF file decoded, in bytes. pillow-heif hands libheif the whole file in memory (libheif
#: is not given a stream), once to read the header and once to decode: a bigger file is refused
#: instead of being held in memory twice. Phone photos are 1 to 15 MB.
MAX_HEIF_FILE_BYTES = 100 * 1024**2

#: Codecs ffmpeg may decode. Common camera, screen-recorder and podcast codecs only.
ALLOWED_VIDEO_CODECS = frozenset(
    {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "mpeg1video", "prores",
     "theora", "mjpeg"}
)
ALLOWED_AUDIO_CODECS = frozenset(
    {"aac", "mp3", "mp2", "opus", "vorbis", "flac", "alac", "ac3", "eac3"}
)


@dataclass(frozen=True)
class Sniffed:
    """What a file's content says it is."""

    mime: str
    #: image, video, audio, document, archive or other (the asset ``file_type``).
    kind: str
    #: Pillow format name for images, ffmpeg demuxer name for audio and video, None otherwise.
    decoder: str | None = None


@dataclass(frozen=True)
class MediaInfo:
    """ffprobe's description of an audio or video file, checked against the limits."""

    sniffed: Sniffed
    duration: float
    container: str
    bit_rate: int | None
    video: dict[str, Any] | None
    audio: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def kind(self) -> str:
        return "video" if self.video else "audio"


def _riff(head: bytes) -> Sniffed | None:
    fourcc = head[8:12]
    if fourcc == b"WEBP":
        return Sniffed("image/webp", "image", "WEBP")
    if fourcc == b"WAVE":
        return Sniffed("audio/wav", "audio", "wav")
    if fourcc == b"AVI ":
        return Sniffed("video/x-msvideo", "video", "avi")
    return None


#: ISO base media ``ftyp`` major brands: images first, then audio; any other brand is video.
_FTYP_IMAGE = {b"avif": ("image/avif", "AVIF"), b"avis": ("image/avif", "AVIF")}
_FTYP_HEIF = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_FTYP_AUDIO = {b"M4A ", b"M4B ", b"M4P "}


def _ftyp(head: bytes) -> Sniffed:
    brand = head[8:12]
    if brand in _FTYP_IMAGE:
        mime, fmt = _FTYP_IMAGE[brand]
        return Sniffed(mime, "image", fmt)
    box_size = int.from_bytes(head[0:4], "big")
    compatible = head[16:max(16, min(box_size, 256))]
    if brand in (b"mif1", b"msf1") and any(
        compatible[i:i + 4] in _FTYP_IMAGE for i in range(0, len(compatible) - 3, 4)
    ):
        return Sniffed("image/avif", "image", "AVIF")  # a generic HEIF brand around AV1 pictures
    if brand in _FTYP_HEIF:
        mime = "image/heif" if brand in (b"mif1", b"msf1") else "image/heic"
        return Sniffed(mime, "image", "HEIF")
    if brand in _FTYP_AUDIO:
        return Sniffed("audio/mp4", "audio", "mov")
    if brand == b"qt  ":
        return Sniffed("video/quicktime", "video", "mov")
    return Sniffed("video/mp4", "video", "mov")


#: Sizes of the BMP info headers in use (OS/2 core 12, Windows 40 to 124): with the ``BM`` magic they
#: tell a bitmap from a text file that happens to start with "BM".
_BMP_INFO_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}


def _bmp(head: bytes) -> Sniffed | None:
    if len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_INFO_HEADER_SIZES:
        return Sniffed("image/bmp", "image", "BMP")
    return None


def _mpeg_audio(head: bytes) -> Sniffed | None:
    if head[:3] == b"ID3":
        return Sniffed("audio/mpeg", "audio", "mp3")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0x3
        if layer == 0:  # ADTS: MPEG-4 AAC in its raw transport
            return Sniffed("audio/aac", "audio", "aac")
        return Sniffed("audio/mpeg", "audio", "mp3")
    return None


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True


def sniff_bytes(head: bytes) -> Sniffed:
    """Name a format from a file's first bytes."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image/jpeg", "image", "JPEG")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image/png", "image", "PNG")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image/gif", "image", "GIF")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed("image/tiff", "image", "TIFF")
    if head[:2] == b"BM" and (found := _bmp(head)):
        return found
    if head[:4] == b"RIFF" and (found := _riff(head)):
        return found
    if head[4:8] == b"ftyp":
        return _ftyp(head)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        if b"webm" in head[:64]:
            return Sniffed("video/webm", "video", "matroska")
        return Sniffed("video/x-matroska", "video", "matroska")
    if head.startswith(b"OggS"):
        if b"theora" in head[:512]:
            return Sniffed("video/ogg", "video", "ogg")
        return Sniffed("audio/ogg", "audio", "ogg")
    if head.startswith(b"fLaC"):
        return Sniffed("audio/flac", "audio", "flac")
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return Sniffed("video/mp2t", "video", "mpegts")
    if (found := _mpeg_audio(head)) is not None:
        return found
    if head.startswith(b"%PDF-"):
        return Sniffed("application/pdf", "document")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return Sniffed("application/zip", "archive")
    if head.startswith(b"\x1f\x8b"):
        return Sniffed("application/gzip", "archive")
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return Sniffed("application/x-7z-compressed", "archive")
    if head.startswith(b"Rar!\x1a\x07"):
        return Sniffed("application/vnd.rar", "archive")
    if len(head) > 262 and head[257:262] == b"ustar":
        return Sniffed("application/x-tar", "archive")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"#EXTM3U"):
        # A playlist names other files and URLs: it is data, never media, here.
        return Sniffed("application/vnd.apple.mpegurl", "other")
    if _is_text(head):
        return Sniffed("text/plain", "document")
    return Sniffed("application/octet-stream", "other")


def sniff(path: Path) -> Sniffed:
    """The MIME type and asset kind of ``path``, from its content alone."""
    with open(path, "rb") as fh:
        return sniff_bytes(fh.read(SNIFF_BYTES))


def check_source(path: Path, limits: MediaLimits) -> int:
    """Size of the source file, refused when empty or above ``max_source_bytes``."""
    size = Path(path).stat().st_size
    if size == 0:
        raise PermanentJobError("the file is empty")
    if size > limits.max_source_bytes:
        raise PermanentJobError(
            f"file is {size} bytes, above the {limits.max_source_bytes} byte limit"
        )
    return size


def require_kind(sniffed: Sniffed, kinds: set[str] | frozenset[str], job: str) -> None:
    """Refuse a file whose content is not of a kind the job handles."""
    if sniffed.kind not in kinds:
        raise PermanentJobError(
            f"{job} needs {' or '.join(sorted(kinds))}, but the file's content is "
            f"{sniffed.mime} ({sniffed.kind})"
        )


# --------------------------------------------------------------------------- audio and video


def _frame_rate(text: str | None) -> float | None:
    if not text or "/" not in text:
        return None
    num, _, den = text.partition("/")
    try:
        return round(int(num) / int(den), 3) if int(den) else None
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def probe_media(path: Path, limits: MediaLimits, sniffed: Sniffed | None = None) -> MediaInfo:
    """Probe an audio or video file with its sniffed demuxer forced, and check it against limits."""
    check_source(path, limits)
    sniffed = sniffed or sniff(path)
    if sniffed.kind not in ("audio", "video") or sniffed.decoder not in ffmpeg.ALLOWED_DEMUXERS:
        raise PermanentJobError(
            f"the file's content is {sniffed.mime}, which is not an allowed audio or video format"
        )
    info = ffmpeg.ffprobe(path, sniffed.decoder, timeout=min(60.0, limits.max_process_seconds))
    fmt = info.get("format", {})
    streams = info.get("streams", [])
    video = next(
        (s for s in streams if s.get("codec_type") == "video"
         and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise PermanentJobError("the file has no audio or video stream")

    duration = _float(fmt.get("duration")) or max(
        (_float(s.get("duration")) or 0.0 for s in streams), default=0.0
    )
    if duration <= 0:
        raise PermanentJobError("the media file has no duration")
    if duration > limits.max_duration_seconds:
        raise PermanentJobError(
            f"media is {duration:.0f} s long, above the {limits.max_duration_seconds:.0f} s limit"
        )

    video_info = None
    if video is not None:
        codec = video.get("codec_name")
        if codec not in ALLOWED_VIDEO_CODECS:
            raise PermanentJobError(f"video codec {codec!r} is not allowed")
        width, height = _int(video.get("width")) or 0, _int(video.get("height")) or 0
        if width <= 0 or height <= 0:
            raise PermanentJobError("the video stream has no dimensions")
        if max(width, height) > limits.max_video_dimension:
            raise PermanentJobError(
                f"video is {width}x{height} pixels, above the "
                f"{limits.max_video_dimension} pixel limit"
            )
        rotation = _rotation(video)
        video_info = {
            "codec": codec,
            "profile": video.get("profile"),
            "width": width,
            "height": height,
            "display_width": height if rotation % 180 else width,
            "display_height": width if rotation % 180 else height,
            "rotation": rotation,
            "frame_rate": _frame_rate(video.get("avg_frame_rate"))
            or _frame_rate(video.get("r_frame_rate")),
            "pixel_format": video.get("pix_fmt"),
            "bit_rate": _int(video.get("bit_rate")),
            "colour": colour.from_stream(video).as_dict(),
        }
    audio_info = None
    if audio is not None:
        codec = audio.get("codec_name")
        if codec not in ALLOWED_AUDIO_CODECS and not str(codec).startswith("pcm_"):
            raise PermanentJobError(f"audio codec {codec!r} is not allowed")
        audio_info = {
            "codec": codec,
            "channels": _int(audio.get("channels")),
            "channel_layout": audio.get("channel_layout"),
            "sample_rate": _int(audio.get("sample_rate")),
            "bit_rate": _int(audio.get("bit_rate")),
        }
    kind = "video" if video_info else "audio"
    if kind != sniffed.kind:
        # An MP4 or Matroska file with sound only is audio; say so from now on.
        sniffed = replace(sniffed, kind=kind, mime=sniffed.mime.replace("video/", "audio/"))
    return MediaInfo(
        sniffed=sniffed,
        duration=round(duration, 3),
        container=str(fmt.get("format_name", sniffed.decoder)),
        bit_rate=_int(fmt.get("bit_rate")),
        video=video_info,
        audio=audio_info,
        raw=info,
    )


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(_float(side["rotation"]) or 0) % 360
    return int(_float(stream.get("tags", {}).get("rotate")) or 0) % 360


# --------------------------------------------------------------------------- images


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:g} MP"


def check_image_size(width: int, height: int, limits: MediaLimits) -> None:
    """Refuse dimensions above the pixel limit before anything is decoded."""
    if width <= 0 or height <= 0:
        raise PermanentJobError(f"image has invalid dimensions {width}x{height}")
    if width * height > limits.max_image_pixels:
        raise PermanentJobError(
            f"image is {width}x{height} pixels, above the "
            f"{_megapixels(limits.max_image_pixels)} limit"
        )


def _header_size(path: Path, fmt: str) -> tuple[int, int]:
    """Dimensions from the format plugin's header parser alone: no decoding, no global limit."""
    factory, accept = Image.OPEN[fmt]
    with open(path, "rb") as fh:
        head = fh.read(16)
        fh.seek(0)
        if accept and not accept(head):
            raise PermanentJobError(f"the file is not a valid {fmt} image")
        im = factory(fh, str(path))
        try:
            return im.size
        finally:
            im.close()


@contextmanager
def open_image(
    path: Path, limits: MediaLimits, sniffed: Sniffed | None = None
) -> Iterator[Image.Image]:
    """Open an image for decoding after checking format, dimensions and frame count.

    Pillow's own decompression-bomb guard (a process-wide global) is not relied on: the header is
    parsed with the format's plugin alone and checked against ``limits`` first. Pillow's bomb
    warning and error, and decoder errors, still become readable ``PermanentJobError``s.
    """
    size = check_source(path, limits)
    sniffed = sniffed or sniff(path)
    if sniffed.kind != "image":
        raise PermanentJobError(f"the file's content is {sniffed.mime}, not an image")
    fmt = sniffed.decoder
    Image.init()  # Pillow registers its format plugins lazily
    if fmt not in ALLOWED_IMAGE_FORMATS or fmt not in Image.OPEN:
        raise PermanentJobError(f"image format {sniffed.mime} is not supported")
    if fmt == "HEIF" and size > MAX_HEIF_FILE_BYTES:
        raise PermanentJobError(
            f"HEIF file is {size} bytes, above the {MAX_HEIF_FILE_BYTES} byte limit for HEIF images"
        )
    try:
        width, height = _header_size(path, fmt)
    except PermanentJobError:
        raise
    except Exception as exc:
        raise PermanentJobError(f"the {fmt} image header could not be read: {exc}") from exc
    check_image_size(width, height, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path, formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PermanentJobError(
            f"image is {width}x{height} pixels, refused as a decompression bomb"
        ) from exc
    except Exception as exc:
        raise PermanentJobError(f"the {fmt} image could not be opened: {exc}") from exc
    try:
        frames = getattr(im, "n_frames", 1)
        if frames > limits.max_animation_frames:
            raise PermanentJobError(
                f"image has {frames} frames, above the {limits.max_animation_frames} frame limit"
            )
        yield im
    finally:
        im.close()


@contextmanager
def decoding(what: str = "image") -> Iterator[None]:
    """Turn decoder failures inside the block into readable permanent errors."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except PermanentJobError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PermanentJobError(f"{what} refused as a decompression bomb: {exc}") from exc
    except OSError as exc:
        if exc.errno is not None:  # a real I/O error (disk full, ...), not a decoder's complaint
            raise TransientJobError(f"I/O error while processing the {what}: {exc}") from exc
        raise PermanentJobError(f"{what} data is corrupt or truncated: {exc}") from exc
    except (SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise PermanentJobError(f"{what} data is corrupt or truncated: {exc}") from exc
