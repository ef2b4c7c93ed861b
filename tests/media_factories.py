"""Media files for tests, made on the spot with Pillow, ffmpeg and espeak-ng.

Each factory writes one file into a directory and returns its path; keyword arguments override
the defaults. Hostile and broken files are here too, so every test names what it feeds a job.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

#: A sentence espeak-ng says clearly enough for Whisper tiny.en.
SPEECH_SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def image(
    directory: Path,
    name: str = "photo.jpg",
    *,
    size: tuple[int, int] = (1200, 800),
    fmt: str = "JPEG",
    orientation: int | None = None,
    gps: bool = False,
    mode: str = "RGB",
    quality: int = 92,
) -> Path:
    """A picture with a red marker in its top-left corner (to check orientation), EXIF optional.

    ``orientation`` sets EXIF tag 0x0112; ``gps`` adds a GPS IFD with a latitude and longitude.
    """
    w, h = size
    im = Image.new(mode, size, (40, 110, 180, 255) if mode == "RGBA" else (40, 110, 180))
    draw = ImageDraw.Draw(im)
    for x in range(0, w, max(1, w // 12)):
        draw.line([(x, 0), (x, h)], fill=(220, 220, 60), width=max(1, w // 200))
    draw.rectangle([0, 0, w // 4, h // 4], fill=(230, 20, 20))
    if mode == "RGBA":
        draw.rectangle([w // 2, h // 2, w, h], fill=(0, 0, 0, 0))
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model 1"  # Model
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1] = "N"
        gps_ifd[2] = (48.0, 51.0, 29.0)
        gps_ifd[3] = "E"
        gps_ifd[4] = (2.0, 17.0, 40.0)
    path = directory / name
    options: dict[str, object] = {"exif": exif.tobytes()}
    if fmt == "JPEG":
        options["quality"] = quality
    im.save(path, format=fmt, **options)
    return path


def photo(directory: Path, name: str = "photo.jpg", *, size: tuple[int, int] = (1200, 800),
          quality: int = 100, gps: bool = False) -> Path:
    """A photograph-like JPEG (smooth gradient, grain, slight blur), with EXIF and optional GPS."""
    gradient = Image.radial_gradient("L").resize(size).convert("RGB")
    grain = Image.effect_noise(size, 20).convert("RGB")
    im = Image.blend(gradient, grain, 0.3).filter(ImageFilter.GaussianBlur(1.5))
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    if gps:
        exif.get_ifd(0x8825)[2] = (48.0, 51.0, 29.0)
    path = directory / name
    im.save(path, format="JPEG", quality=quality, exif=exif.tobytes())
    return path


def animated_gif(directory: Path, name: str = "anim.gif", frames: int = 5) -> Path:
    """A small animated GIF with ``frames`` frames."""
    images = []
    for i in range(frames):
        frame = Image.new("RGB", (64, 48), (20, 20, 20))
        ImageDraw.Draw(frame).rectangle([i * 4, 0, i * 4 + 8, 47], fill=(250, 40 * (i % 6), 0))
        images.append(frame)
    path = directory / name
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def video(
    directory: Path,
    name: str = "clip.mp4",
    *,
    size: tuple[int, int] = (320, 240),
    seconds: float = 3.0,
    rate: int = 15,
    black_seconds: float = 0.0,
    audio: bool = True,
    tone_db: float = -20.0,
) -> Path:
    """An H.264/AAC MP4 of ffmpeg's test pattern with a sine tone, black for ``black_seconds``."""
    w, h = size
    path = directory / name
    vf = f"drawbox=t=fill:c=black:enable='lt(t,{black_seconds})'" if black_seconds else "null"
    args = [
        "ffmpeg", "-nostdin", "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={rate}:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    args += ["-vf", vf, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
             "-g", str(rate)]
    if audio:
        args += ["-af", f"volume={tone_db}dB", "-c:a", "aac", "-b:a", "96k", "-shortest"]
    args.append(str(path))
    _run(args)
    return path


def speech_wav(directory: Path, name: str = "speech.wav", text: str = SPEECH_SENTENCE) -> Path:
    """espeak-ng saying ``text``, as a WAV file."""
    path = directory / name
    _run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text])
    return path


def audio(
    directory: Path,
    name: str = "tone.mp3",
    *,
    seconds: float = 4.0,
    volume_db: float = -30.0,
    codec: str = "libmp3lame",
) -> Path:
    """A quiet tone with a second, louder tone in its middle (something for loudnorm to do)."""
    path = directory / name
    _run([
        "ffmpeg", "-nostdin", "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=660:sample_rate=44100:duration={seconds}",
        "-filter_complex",
        f"[1]volume=enable='between(t,{seconds / 3},{2 * seconds / 3})':volume=4,"
        f"volume=enable='not(between(t,{seconds / 3},{2 * seconds / 3}))':volume=0[b];"
        f"[0][b]amix=inputs=2,volume={volume_db}dB",
        "-c:a", codec, str(path),
    ])
    return path


def speech_video(directory: Path, name: str = "talk.mp4", text: str = SPEECH_SENTENCE, *,
                 size: tuple[int, int] = (160, 120)) -> Path:
    """A small video whose soundtrack is espeak-ng saying ``text``."""
    wav = speech_wav(directory, name + ".wav", text)
    path = directory / name
    _run([
        "ffmpeg", "-nostdin", "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate=10", "-i", str(wav),
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(path),
    ])
    wav.unlink()
    return path


def _quiet(seconds: float, noise: float) -> list[str]:
    """ffmpeg input arguments for ``seconds`` of room tone: pink noise at amplitude ``noise``
    (0.001 is about -60 dBFS), or digital silence when ``noise`` is 0."""
    if noise:
        return ["-f", "lavfi", "-i", f"anoisesrc=r=22050:c=pink:a={noise}:d={seconds}:seed=7"]
    return ["-f", "lavfi", "-i", f"anullsrc=r=22050:cl=mono:d={seconds}"]


def silence_speech_silence(directory: Path, name: str = "pauses.wav", *, lead: float = 8.0,
                           text: str = SPEECH_SENTENCE, trail: float = 8.0,
                           noise: float = 0.001) -> Path:
    """Room tone for ``lead`` s, espeak-ng saying ``text``, room tone for ``trail`` s (WAV, or any
    container ffmpeg infers from ``name``)."""
    wav = speech_wav(directory, name + ".speech.wav", text)
    path = directory / name
    inputs = [*(_quiet(lead, noise) if lead else []), "-i", str(wav),
              *(_quiet(trail, noise) if trail else [])]
    parts = 1 + bool(lead) + bool(trail)
    graph = "".join(f"[{i}]aresample=22050,aformat=sample_fmts=s16:channel_layouts=mono[p{i}];"
                    for i in range(parts))
    graph += "".join(f"[p{i}]" for i in range(parts)) + f"concat=n={parts}:v=0:a=1"
    _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *inputs, "-filter_complex", graph,
          str(path)])
    wav.unlink()
    return path


def silent_audio(directory: Path, name: str = "silence.m4a", *, seconds: float = 10.0,
                 noise: float = 0.0) -> Path:
    """A recording in which nothing is said: digital silence, or room tone with ``noise``."""
    path = directory / name
    _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *_quiet(seconds, noise),
          str(path)])
    return path


def random_whisper_checkpoint(directory: Path, name: str = "random-whisper.pt") -> Path:
    """A tiny randomly initialised openai-whisper checkpoint (no weights can be downloaded); needs
    the ``whisper`` extra. What it transcribes is noise, but it runs end to end."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                           n_audio_layer=1, n_vocab=51865, n_text_ctx=448, n_text_state=64,
                           n_text_head=2, n_text_layer=1)
    torch.manual_seed(0)
    model = Whisper(dims)
    # Whisper leaves the decoder's positional embedding uninitialised (torch.empty).
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    path = directory / name
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


# --------------------------------------------------------------------------- hostile and broken


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(directory: Path, name: str = "bomb.png", side: int = 30000) -> Path:
    """A PNG declaring ``side`` x ``side`` pixels of grey: a few kilobytes that decode to gigabytes."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * side  # filter byte + one grey byte per pixel
    body = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )
    path = directory / name
    path.write_bytes(data)
    return path


def jpeg_huge_header(directory: Path, name: str = "huge.jpg", side: int = 60000) -> Path:
    """A real small JPEG whose frame header is patched to claim ``side`` x ``side`` pixels."""
    src = image(directory, "_small_for_header.jpg", size=(16, 16))
    data = bytearray(src.read_bytes())
    src.unlink()
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, side, side)
    path = directory / name
    path.write_bytes(bytes(data))
    return path


def truncated(source: Path, name: str | None = None, keep: float = 0.4) -> Path:
    """The first ``keep`` fraction of ``source``, as a new file next to it."""
    data = source.read_bytes()
    path = source.with_name(name or f"truncated_{source.name}")
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def corrupt_jpeg(directory: Path, name: str = "corrupt.jpg") -> Path:
    """A JPEG whose signature is right and whose body is noise."""
    path = directory / name
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    return path


def text_named_mp4(directory: Path, name: str = "notes.mp4") -> Path:
    """A plain text file with a video extension."""
    path = directory / name
    path.write_text("meeting notes\nnot a video at all\n")
    return path


def hls_playlist(directory: Path, name: str = "evil.mp4", target: str = "/etc/passwd") -> Path:
    """An HLS playlist, named like a video, whose only segment is a local file."""
    path = directory / name
    path.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n"
        f"file://{target}\n#EXT-X-ENDLIST\n"
    )
    return path


def concat_list(directory: Path, name: str = "list.mp4", target: str = "/etc/passwd") -> Path:
    """An ffconcat script, named like a video, that points at a local file."""
    path = directory / name
    path.write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    return path


def mislabelled(source: Path, name: str) -> Path:
    """A copy of ``source`` under another name (say, a JPEG named ``.mp3``)."""
    path = source.with_name(name)
    path.write_bytes(source.read_bytes())
    return path


def avi_with_m3u8_inside(directory: Path, name: str = "sneaky.avi") -> Path:
    """A file starting with a RIFF/AVI signature followed by an HLS playlist (ffmpeg's old CVE)."""
    path = directory / name
    body = b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 4) + b"AVI " + body)
    return path


def screen_gif(
    directory: Path,
    name: str = "screen.gif",
    *,
    size: tuple[int, int] = (321, 181),
    frames: int = 24,
    frame_ms: int = 100,
    blank_frames: int = 3,
) -> Path:
    """An animated GIF like a screen capture: odd dimensions, ``blank_frames`` black frames first,
    then a gradient with a bar moving across it and a counter square (a new picture each frame)."""
    w, h = size
    gradient = Image.linear_gradient("L").resize(size).convert("RGB")
    images = []
    for i in range(frames):
        if i < blank_frames:
            frame = Image.new("RGB", size, (0, 0, 0))
        else:
            frame = Image.blend(gradient, Image.new("RGB", size, (30, 90, 200)), 0.5)
            draw = ImageDraw.Draw(frame)
            x = (i * w // frames) % w
            draw.rectangle([x, h // 4, x + w // 8, 3 * h // 4], fill=(240, 200, 20))
            draw.rectangle([4, 4, 4 + (i % 10) * 6, 14], fill=(250, 250, 250))
        images.append(frame)
    path = directory / name
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path


def animated_webp(directory: Path, name: str = "anim.webp", *, frames: int = 12) -> Path:
    """An animated WebP (ffmpeg cannot decode these; Pillow can)."""
    gif = screen_gif(directory, name + ".src.gif", frames=frames, blank_frames=1)
    with Image.open(gif) as im:
        shots = []
        for i in range(im.n_frames):
            im.seek(i)
            shots.append(im.convert("RGB"))
    path = directory / name
    shots[0].save(path, format="WEBP", save_all=True, append_images=shots[1:], duration=80, loop=0)
    gif.unlink()
    return path


def phone_video(directory: Path, name: str = "phone.mp4", *, seconds: float = 2.0) -> Path:
    """A portrait phone recording: a 1920x1080 stream with a 90° rotation flag (display 1080x1920),
    a test pattern at 30 fps and a tone, as phones write them."""
    path = directory / name
    plain = directory / f"_unrotated_{name}"
    _run([
        "ffmpeg", "-nostdin", "-y", "-loglevel", "error",
        "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-shortest", str(plain),
    ])
    # ffmpeg 5.1 writes the display matrix from the rotate tag on a stream copy only.
    _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(plain), "-c", "copy",
          "-metadata:s:v:0", "rotate=90", str(path)])
    plain.unlink()
    return path


def complexity_change_video(
    directory: Path, name: str = "busy.mp4", *, size: tuple[int, int] = (1280, 720),
    seconds: float = 12.0,
) -> Path:
    """A clip whose complexity changes halfway: a still test pattern, then heavy moving noise (a
    rendition's bit rate is far above its average in the second half)."""
    w, h = size
    path = directory / name
    half = seconds / 2
    _run([
        "ffmpeg", "-nostdin", "-y", "-loglevel", "error",
        "-f", "lavfi", "-i",
        f"testsrc2=size={w}x{h}:rate=30:duration={seconds},"
        f"noise=alls=80:allf=t:enable='gte(t,{half})'",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-shortest", str(path),
    ])
    return path


# --------------------------------------------------------------------------- phone formats

#: A wide-gamut ICC profile from Debian's colord-data (installed by scripts/bootstrap for tests).
PROPHOTO_ICC = Path("/usr/share/color/icc/colord/ProPhotoRGB.icc")

#: Colour patches (R, G, B in 0-255, in the file's own colour space) laid out 4 by 2 on a frame.
PATCHES: tuple[tuple[int, int, int], ...] = (
    (64, 64, 64), (128, 128, 128), (191, 191, 191), (230, 230, 230),
    (179, 89, 77), (89, 153, 89), (89, 102, 166), (166, 153, 89),
)


def patch_centres(size: tuple[int, int]) -> list[tuple[int, int]]:
    """Centre (x, y) of each of ``PATCHES`` on a frame of ``size`` laid out by :func:`patch_frame`."""
    w, h = size
    return [((i % 4) * (w // 4) + w // 8, (i // 4) * (h // 2) + h // 4) for i in range(len(PATCHES))]


def patch_frame(size: tuple[int, int], patches: tuple[tuple[int, int, int], ...] = PATCHES,
                marker: bool = False) -> Image.Image:
    """An RGB frame of flat patches, 4 by 2; ``marker`` adds a white square in the top-left corner."""
    w, h = size
    im = Image.new("RGB", size)
    draw = ImageDraw.Draw(im)
    for i, fill in enumerate(patches):
        x, y = (i % 4) * (w // 4), (i // 4) * (h // 2)
        draw.rectangle([x, y, x + w // 4 - 1, y + h // 2 - 1], fill=fill)
    if marker:
        draw.rectangle([0, 0, w // 16, h // 16], fill=(255, 255, 255))
    return im


def heic(directory: Path, name: str = "photo.heic", *, size: tuple[int, int] = (480, 320),
         orientation: int | None = None, icc: bytes | None = None, gps: bool = False,
         quality: int = 95, burst: tuple[tuple[int, int, int], ...] = (),
         nclx: tuple[int, int] | None = None,
         patches: tuple[tuple[int, int, int], ...] = PATCHES) -> Path:
    """A HEIC encoded by pillow-heif (libheif + x265) from :func:`patch_frame` with a marker.

    ``orientation`` is given as EXIF (libheif writes it as the HEIF ``irot``/``imir`` transform);
    ``icc`` embeds a colour profile; ``nclx`` writes (primaries, transfer) H.273 code points
    instead (e.g. (12, 13): Display P3); ``burst`` adds flat images of these colours after the patch
    frame, the last one marked primary (as a burst or Live Photo still is).
    """
    import pillow_heif

    im = patch_frame(size, patches, marker=True)
    exif = Image.Exif()
    exif[0x010F] = "TestPhone"
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1], gps_ifd[2] = "N", (48.0, 51.0, 29.0)
    # Through Pillow's save, as apps do: libheif stores the EXIF orientation as the HEIF rotation.
    pillow_heif.register_heif_opener()  # no options given: the worker's options stay as they are
    options: dict[str, object] = {"format": "HEIF", "quality": quality, "exif": exif.tobytes()}
    if icc is not None:
        options["icc_profile"] = icc
    if nclx is not None:
        options.update(color_primaries=nclx[0], transfer_characteristics=nclx[1],
                       matrix_coefficients=6, full_range_flag=1)
    if burst:
        options.update(save_all=True, primary_index=len(burst),
                       append_images=[Image.new("RGB", size, c) for c in burst])
    path = directory / name
    im.save(path, **options)
    return path


def heic_bomb(directory: Path, name: str = "bomb.heic", side: int = 30000) -> Path:
    """A 64x64 HEIC whose header (``ispe`` box) declares ``side`` x ``side`` pixels."""
    small = heic(directory, "_bomb_seed.heic", size=(64, 64), quality=30)
    data = bytearray(small.read_bytes())
    at = data.find(b"ispe")
    assert at > 0 and data.count(b"ispe") == 1
    data[at + 8: at + 16] = side.to_bytes(4, "big") * 2
    path = directory / name
    path.write_bytes(bytes(data))
    small.unlink()
    return path


def hdr_video(directory: Path, name: str = "hlg.mp4", *, transfer: str = "arib-std-b67",
              size: tuple[int, int] = (640, 360), seconds: float = 1.0, rate: int = 25,
              patches: tuple[tuple[int, int, int], ...] = PATCHES, preset: str = "ultrafast") -> Path:
    """A 10-bit HEVC MP4 as a phone records HDR: BT.2020, ``transfer`` (HLG or PQ), limited range.

    The frame is :func:`patch_frame`: its 8-bit values are the non-linear HDR signal R'G'B'
    (value / 255), turned into BT.2020 Y'CbCr by ffmpeg and tagged in the stream and container.
    """
    png = directory / f"_{name}.png"
    patch_frame(size, patches).save(png)
    path = directory / name
    _run([
        "ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-loop", "1", "-framerate", str(rate),
        "-i", str(png), "-t", str(seconds),
        "-vf", "scale=out_color_matrix=bt2020:out_range=tv,format=yuv420p10le",
        "-c:v", "libx265", "-preset", preset, "-tag:v", "hvc1",
        "-x265-params", f"crf=10:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc"
                        ":range=limited:log-level=error",
        "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc",
        "-color_range", "tv", str(path),
    ])
    png.unlink()
    return path


def sdr_patch_video(directory: Path, name: str = "patches709.mp4", *,
                    size: tuple[int, int] = (640, 360), seconds: float = 1.0,
                    tagged: bool = True, full_range: bool = False) -> Path:
    """An 8-bit H.264 MP4 of :func:`patch_frame` in BT.709 Y'CbCr, limited range; tagged so, or
    (``tagged=False``) with no colour tags at all, as many screen recorders and encoders write;
    ``full_range`` encodes and tags full-range Y'CbCr, as some Android phones record."""
    png = directory / f"_{name}.png"
    patch_frame(size).save(png)
    path = directory / name
    _run([
        "ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-loop", "1", "-framerate", "25",
        "-i", str(png), "-t", str(seconds),
        "-vf", f"scale=out_color_matrix=bt709:out_range={'pc' if full_range else 'tv'},"
               f"format={'yuvj420p' if full_range else 'yuv420p'}",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10",
        *(["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
           "-color_range", "pc" if full_range else "tv"] if tagged else []),
        str(path),
    ])
    png.unlink()
    return path
