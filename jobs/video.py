"""Video: poster frame and storyboard (thumbnail job), H.264/AAC renditions and HLS (transcode job).

Every ffmpeg run goes through ``jobs.ffmpeg`` (forced demuxer, file-only protocol, timeout). The
input was probed and checked against the limits first (``jobs.probe.probe_media``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python
from PIL import Image, ImageStat

from jobs import audio, colour, ffmpeg, hls, images, probe
from jobs.errors import PermanentJobError
from jobs.job_input import JobInput
from jobs.limits import MediaLimits
from jobs.result import JobResult, OutputFile

#: Where poster candidates are taken, as fractions of the duration, in order of preference.
POSTER_CANDIDATES = (0.1, 0.25, 0.5, 0.75, 0.9)
#: A frame darker than this mean luma (0-255), or flatter than this standard deviation, is
#: "black" (fade-ins, slates): the poster is taken elsewhere.
BLACK_MEAN_LUMA = 24.0
FLAT_LUMA_STDDEV = 6.0
#: Storyboard: tile width in pixels, most tiles, shortest interval between tiles.
STORYBOARD_TILE_WIDTH = 160
STORYBOARD_MAX_TILES = 100
STORYBOARD_MIN_INTERVAL = 1.0
STORYBOARD_COLUMNS = 10

#: Default rendition heights (the short side for portrait video).
DEFAULT_RENDITIONS: tuple[int, ...] = (1080, 720, 480)
#: Video and audio bit rates per rendition height, in kbit/s (caps for CRF encoding).
_MAXRATE_KBPS = {2160: 16000, 1440: 9000, 1080: 6000, 720: 3000, 480: 1500, 360: 800, 240: 400}
AUDIO_BITRATE = "128k"
#: Seconds per HLS segment; keyframes are forced on this grid so every rendition aligns.
HLS_SEGMENT_SECONDS = 4
#: The transcript job's WebVTT output (``jobs.transcripts``): the HLS subtitles rendition of
#: ``hls/master_with_transcript.m3u8`` names it at its variant key (see ``jobs.hls``).
TRANSCRIPT_VTT = "transcript.vtt"


def _frame_stats(path: Path) -> tuple[float, float]:
    with Image.open(path) as im:
        gray = im.convert("L")
        gray.thumbnail((160, 160))
        stat = ImageStat.Stat(gray)
        return stat.mean[0], stat.stddev[0]


def _extract_frame(
    source: Path, info: probe.MediaInfo, at: float, dest: Path, timer: ffmpeg.Timer
) -> None:
    stream = ffmpeg.input_stream(source, info.sniffed.decoder or "", ss=f"{at:.3f}")
    source_colour = colour.VideoColour.of(info.video)
    stream = (
        colour.to_sdr(stream.video, source_colour)
        .filter("scale", "min(1920,iw)", -2,
                **colour.rgb_scale_options(colour.frame_colour(source_colour)))
        .filter("format", "rgb24")
        .output(str(dest), vframes=1, f="image2", vcodec="png", update=1)
    )
    ffmpeg.run_ffmpeg(stream, timeout=min(timer.remaining(), 120), what="frame extraction")
    if not dest.exists():
        raise PermanentJobError(f"no frame could be decoded at {at:.1f} s")


def choose_poster(
    source: Path, info: probe.MediaInfo, workdir: Path, timer: ffmpeg.Timer
) -> tuple[Path, float]:
    """The first candidate frame that is neither black nor flat; else the brightest candidate."""
    best: tuple[float, Path, float] | None = None
    for i, fraction in enumerate(POSTER_CANDIDATES):
        at = info.duration * fraction
        dest = workdir / f"_poster_candidate_{i}.png"
        try:
            _extract_frame(source, info, at, dest, timer)
        except PermanentJobError:
            if i == len(POSTER_CANDIDATES) - 1 and best is None:
                raise
            continue
        mean, stddev = _frame_stats(dest)
        if mean >= BLACK_MEAN_LUMA and stddev >= FLAT_LUMA_STDDEV:
            return dest, at
        if best is None or mean > best[0]:
            best = (mean, dest, at)
    if best is None:
        raise PermanentJobError("no frame of the video could be decoded")
    return best[1], best[2]


def storyboard(
    source: Path, info: probe.MediaInfo, workdir: Path, timer: ffmpeg.Timer
) -> list[OutputFile]:
    """A sprite of evenly spaced frames and a WebVTT file mapping time ranges to sprite tiles."""
    interval = max(STORYBOARD_MIN_INTERVAL, info.duration / STORYBOARD_MAX_TILES)
    count = max(1, math.ceil(info.duration / interval))
    columns = min(STORYBOARD_COLUMNS, count)
    rows = math.ceil(count / columns)
    sprite = workdir / "storyboard.jpg"
    input_opts: dict[str, Any] = {}
    if info.duration > 120:
        input_opts["skip_frame"] = "nokey"  # long video: decode keyframes only
    stream = ffmpeg.input_stream(source, info.sniffed.decoder or "", **input_opts).video
    source_colour = colour.VideoColour.of(info.video)
    stream = (
        colour.to_sdr(stream.filter("fps", fps=f"1/{interval:.6f}"), source_colour)
        .filter("scale", STORYBOARD_TILE_WIDTH, -2,
                **colour.jpeg_scale_options(colour.frame_colour(source_colour)))
        .filter("format", "yuvj420p")
        .filter("tile", f"{columns}x{rows}")
        .output(str(sprite), vframes=1, f="image2", vcodec="mjpeg", update=1, **{"q:v": 5})
    )
    ffmpeg.run_ffmpeg(stream, timeout=timer.remaining(), what="storyboard")
    size = ffmpeg.check_output_size(sprite, 50 * 1024**2)
    with Image.open(sprite) as im:
        width, height = im.size
    tile_w, tile_h = width // columns, height // rows
    lines = ["WEBVTT", ""]
    for i in range(count):
        start, end = i * interval, min((i + 1) * interval, info.duration)
        x, y = (i % columns) * tile_w, (i // columns) * tile_h
        lines += [f"{_vtt_time(start)} --> {_vtt_time(end)}",
                  f"storyboard.jpg#xywh={x},{y},{tile_w},{tile_h}", ""]
    vtt = workdir / "storyboard.vtt"
    vtt.write_text("\n".join(lines))
    return [
        OutputFile("storyboard.jpg", sprite, "jpeg", "image/jpeg", size, width=width,
                   height=height, extra={"tiles": count, "columns": columns, "rows": rows,
                                         "interval": round(interval, 3)}),
        OutputFile("storyboard.vtt", vtt, "vtt", "text/vtt", vtt.stat().st_size),
    ]


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def run_thumbnail(inp: JobInput, info: probe.MediaInfo) -> JobResult:
    """Poster frame (away from black frames) in the image ladder, plus a storyboard."""
    source, workdir, params, limits, progress = inp.source, inp.workdir, inp.params, inp.limits, inp.progress
    widths = images.parse_widths(params)
    formats = images.parse_formats(params)
    timer = ffmpeg.Timer(limits.max_process_seconds)
    frame, at = choose_poster(source, info, workdir, timer)
    progress(0.3)
    with Image.open(frame) as im:
        im.load()
        base = im.convert("RGB")
    base.info = {}
    outputs = images.write_ladder(
        base, workdir, "poster", widths, formats, limits, progress, (0.3, 0.7)
    )
    hash_, colour = images.placeholder(base)
    for candidate in workdir.glob("_poster_candidate_*.png"):
        candidate.unlink()
    if params.get("storyboard", True):
        outputs += storyboard(source, info, workdir, timer)
    progress(1.0)
    return JobResult(
        outputs=tuple(outputs),
        data={
            "source": "video",
            "poster_time": round(at, 3),
            "width": base.width,
            "height": base.height,
            "blurhash": hash_,
            "dominant_color": colour,
            "variants": len(outputs),
        },
    )


# --------------------------------------------------------------------------- transcode


def rendition_heights(info: probe.MediaInfo, wanted: list[int]) -> list[int]:
    """Heights of the ladder at or below the source (its short side), never above; at least one."""
    assert info.video is not None
    short = min(info.video["display_width"], info.video["display_height"])
    fitting = sorted({h for h in wanted if h <= short}, reverse=True)
    return fitting or [short - short % 2]


def parse_renditions(params: dict[str, Any]) -> list[int]:
    raw = params.get("renditions", DEFAULT_RENDITIONS)
    if (not isinstance(raw, (list, tuple)) or not raw
            or not all(isinstance(h, int) and 144 <= h <= 2160 for h in raw)):
        raise PermanentJobError("renditions must be a list of heights between 144 and 2160")
    return list(raw)


def _scale_args(info: probe.MediaInfo, height: int) -> tuple[int, int]:
    assert info.video is not None
    dw, dh = info.video["display_width"], info.video["display_height"]
    if dw >= dh:
        return -2, height
    return height, -2  # portrait: the rendition name is its short side


def _maxrate(height: int) -> int:
    for h in sorted(_MAXRATE_KBPS):
        if height <= h:
            return _MAXRATE_KBPS[h]
    return _MAXRATE_KBPS[max(_MAXRATE_KBPS)]


def transcode_graph(
    source: Path,
    info: probe.MediaInfo,
    workdir: Path,
    heights: list[int],
    limits: MediaLimits,
    preset: str = "veryfast",
    loudnorm: dict[str, Any] | None = None,
) -> tuple[Any, list[Path]]:
    """One ffmpeg graph: decode once, split, scale and encode every rendition; the soundtrack is
    normalised once (``loudnorm``: the second-pass arguments) and shared by every rendition."""
    src = ffmpeg.input_stream(source, info.sniffed.decoder or "")
    source_colour = colour.VideoColour.of(info.video)
    out_colour = colour.sdr_colour(source_colour)
    # HDR: tone-mapped once, before the split, at the size of the largest rendition.
    decoded = colour.to_sdr(src.video, source_colour, _scale_args(info, heights[0]))
    video = decoded.filter_multi_output("split", len(heights)) if len(heights) > 1 else None
    sound = None
    if info.audio is not None:
        sound = src.audio
        if loudnorm is not None:
            # loudnorm may resample internally (192 kHz in its dynamic fallback): back to 48 kHz.
            sound = sound.filter("loudnorm", **loudnorm).filter("aresample", 48000)
        if len(heights) > 1:
            sound = sound.filter_multi_output("asplit", len(heights))
    outputs, paths = [], []
    fps = info.video["frame_rate"] if info.video else None
    gop = max(1, round((fps or 30) * 2))
    for i, height in enumerate(heights):
        branch = video.stream(i) if video is not None else decoded
        w, h = _scale_args(info, height)
        branch = branch.filter("scale", w, h, **colour.yuv_scale_options(source_colour))
        branch = colour.tag(branch.filter("format", "yuv420p"), out_colour)
        path = workdir / f"video_{height}p.mp4"
        rate = _maxrate(height)
        opts: dict[str, Any] = {
            "vcodec": "libx264", "preset": preset, "crf": 23, "profile:v": "high",
            "maxrate": f"{rate}k", "bufsize": f"{rate * 2}k", "g": gop,
            "force_key_frames": f"expr:gte(t,n_forced*{HLS_SEGMENT_SECONDS})",
            "movflags": "+faststart", "fs": limits.max_output_bytes, "map_metadata": -1,
            "f": "mp4", **colour.encoder_options(out_colour),
        }
        streams = [branch]
        if sound is not None:
            streams.append(sound.stream(i) if len(heights) > 1 else sound)
            opts.update({"acodec": "aac", "audio_bitrate": AUDIO_BITRATE, "ac": 2})
        outputs.append(ffmpeg_python.output(*streams, str(path), **opts))
        paths.append(path)
    return ffmpeg_python.merge_outputs(*outputs), paths


def _hls(
    renditions: list[OutputFile], info: probe.MediaInfo, workdir: Path, timer: ffmpeg.Timer,
    subtitles: bool,
) -> list[OutputFile]:
    """Remux every MP4 rendition into HLS segments (no re-encode) and write a master playlist
    whose values are measured from the segments and the encoded streams (``jobs.hls``), with a
    second master playlist adding a subtitles rendition of the transcript when ``subtitles`` is
    true."""
    outputs: list[OutputFile] = []
    variants: list[hls.Variant] = []
    for rendition in renditions:
        label = rendition.name.removeprefix("video_").removesuffix(".mp4")
        folder = workdir / "hls" / label
        folder.mkdir(parents=True, exist_ok=True)
        playlist = folder / "index.m3u8"
        stream = ffmpeg.input_stream(rendition.path, "mov").output(
            str(playlist), c="copy", f="hls", hls_time=HLS_SEGMENT_SECONDS,
            hls_playlist_type="vod", hls_segment_filename=str(folder / "seg_%05d.ts"),
            master_pl_name="_ffmpeg_master.m3u8",
            # No 1.4 s mux delay: MPEG-TS time 0 is media time 0, as the WebVTT transcript assumes.
            muxdelay=0, muxpreload=0,
        )
        ffmpeg.run_ffmpeg(stream, timeout=timer.remaining(), what="HLS packaging")
        # ffmpeg writes master_pl_name next to the media playlist: only its RESOLUTION is kept.
        written = folder / "_ffmpeg_master.m3u8"
        declared = next(hls.attributes(line) for line in written.read_text().splitlines()
                        if line.startswith("#EXT-X-STREAM-INF:"))
        written.unlink()
        probed = ffmpeg.ffprobe(rendition.path, "mov", timeout=min(60, timer.remaining()),
                                show_data=True)
        video_stream = next(s for s in probed["streams"] if s.get("codec_type") == "video")
        audio_stream = next((s for s in probed["streams"] if s.get("codec_type") == "audio"), None)
        codecs = [hls.video_codec(video_stream)]
        if audio_stream is not None:
            codecs.append(hls.audio_codec(audio_stream))
        peak, average = hls.segment_bit_rates(playlist)
        variants.append(hls.Variant(
            uri=f"{label}/index.m3u8", bandwidth=peak, average_bandwidth=average,
            codecs=",".join(codecs),
            resolution=declared.get("RESOLUTION") or f"{rendition.width}x{rendition.height}",
            frame_rate=hls.frame_rate(video_stream),
        ))
        for path in sorted(folder.iterdir()):
            rel = path.relative_to(workdir).as_posix()
            is_playlist = path.suffix == ".m3u8"
            outputs.append(OutputFile(
                rel, path, "m3u8" if is_playlist else "ts",
                "application/vnd.apple.mpegurl" if is_playlist else "video/mp2t",
                path.stat().st_size,
                width=rendition.width if not is_playlist else None,
                height=rendition.height if not is_playlist else None,
            ))
    subtitles_uri = None
    if subtitles:
        folder = workdir / "hls" / "subtitles"
        folder.mkdir(parents=True, exist_ok=True)
        playlist = folder / "index.m3u8"
        playlist.write_text(hls.subtitles_playlist(f"../../{TRANSCRIPT_VTT}", info.duration))
        subtitles_uri = "subtitles/index.m3u8"
        outputs.append(OutputFile("hls/subtitles/index.m3u8", playlist, "m3u8",
                                  "application/vnd.apple.mpegurl", playlist.stat().st_size))
    masters = [("master.m3u8", None)]
    if subtitles_uri:
        masters.append(("master_with_transcript.m3u8", subtitles_uri))
    for i, (name, uri) in enumerate(masters):
        master_path = workdir / "hls" / name
        master_path.write_text(hls.master_playlist(variants, uri))
        outputs.insert(i, OutputFile(f"hls/{name}", master_path, "m3u8",
                                     "application/vnd.apple.mpegurl", master_path.stat().st_size))
    return outputs


def _stream_size(path: Path, timeout: float) -> tuple[int, int]:
    info = ffmpeg.ffprobe(path, "mov", timeout=timeout)
    video = next(s for s in info["streams"] if s.get("codec_type") == "video")
    return int(video["width"]), int(video["height"])


def run_transcode(inp: JobInput, info: probe.MediaInfo) -> JobResult:
    """H.264/AAC MP4 renditions (``+faststart``), and HLS when ``params["hls"]`` is true."""
    source, workdir, params, limits, progress = inp.source, inp.workdir, inp.params, inp.limits, inp.progress
    heights = rendition_heights(info, parse_renditions(params))
    preset = params.get("preset", "veryfast")
    if preset not in ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium"):
        raise PermanentJobError(f"unknown x264 preset {preset!r}")
    normalise = params.get("normalize_audio", True)
    if not isinstance(normalise, bool):
        raise PermanentJobError("normalize_audio must be true or false")
    hdr_mode = colour.parse_hdr_mode(params)
    source_colour = colour.VideoColour.of(info.video)
    timer = ffmpeg.Timer(limits.max_process_seconds)
    loudness: dict[str, Any] = {"audio_normalised": False}
    loudnorm = None
    start = 0.0
    if info.audio is not None and normalise:
        # First pass over the soundtrack only (the video is demuxed, not decoded).
        target = audio.parse_target(params)
        measured = audio.measure_loudness(source, info.sniffed.decoder or "", target,
                                          timeout=timer.remaining(), duration=info.duration,
                                          progress=lambda f: progress(0.1 * f))
        start = 0.1
        silent = audio.is_silent(measured)  # a silent soundtrack stays as it is
        loudness.update(loudness_target_lufs=target,
                        input_loudness_lufs=None if silent else measured["input_i"])
        if not silent:
            loudnorm = audio.normalise_args(target, measured)
            loudness["audio_normalised"] = True
    graph, paths = transcode_graph(source, info, workdir, heights, limits, preset, loudnorm)
    want_hls = bool(params.get("hls"))
    # A transcript job runs by default for every asset with a soundtrack.
    subtitles = params.get("subtitles", info.audio is not None)
    if not isinstance(subtitles, bool):
        raise PermanentJobError("subtitles must be true or false")
    encode_share = (0.85 if want_hls else 1.0) - start
    ffmpeg.run_ffmpeg(
        graph, timeout=timer.remaining(), duration=info.duration,
        progress=lambda f: progress(start + f * encode_share), what="transcode",
    )
    outputs: list[OutputFile] = []
    for height, path in zip(heights, paths, strict=True):
        size = ffmpeg.check_output_size(path, limits.max_output_bytes)
        width, real_height = _stream_size(path, timeout=min(60, timer.remaining()))
        outputs.append(OutputFile(path.name, path, "mp4", "video/mp4", size,
                                  width=width, height=real_height, extra={"rendition": height}))
    if want_hls:
        outputs += _hls(list(outputs), info, workdir, timer, subtitles)
    keep_hdr = hdr_mode == "keep" and source_colour.hdr is not None
    if keep_hdr:
        outputs.append(hdr_rendition(source, info, workdir, heights[0], preset, limits, timer))
    progress(1.0)
    return JobResult(
        outputs=tuple(outputs),
        data={
            "source": "video",
            "renditions": [f"{h}p" for h in heights],
            "hls": want_hls,
            "duration": info.duration,
            "source_colour": source_colour.as_dict(),
            "colour": colour.sdr_colour(source_colour).as_dict(),
            "tone_mapped": source_colour.hdr is not None,
            "hdr_rendition": keep_hdr,
            **loudness,
        },
    )


def hdr_rendition(
    source: Path, info: probe.MediaInfo, workdir: Path, height: int, preset: str,
    limits: MediaLimits, timer: ffmpeg.Timer,
) -> OutputFile:
    """``video_{height}p_hdr.mp4``: 10-bit HEVC (``hvc1``, Main 10) keeping the source's HDR colour,
    for players and screens that show HDR (asked for with ``{"hdr": "keep"}``)."""
    assert info.video is not None
    hdr = colour.VideoColour.of(info.video)
    src = ffmpeg.input_stream(source, info.sniffed.decoder or "")
    w, h = _scale_args(info, height)
    video = colour.tag(src.video.filter("scale", w, h).filter("format", "yuv420p10le"),
                       colour.hdr_colour(hdr))
    path = workdir / f"video_{height}p_hdr.mp4"
    fps = info.video["frame_rate"] or 30
    streams = [video]
    opts: dict[str, Any] = {
        "vcodec": "libx265", "preset": preset, "crf": 24, "tag:v": "hvc1", "g": round(fps * 2),
        "x265-params": colour.x265_params(hdr), "movflags": "+faststart",
        "fs": limits.max_output_bytes, "map_metadata": -1, "f": "mp4",
        **colour.encoder_options(colour.hdr_colour(hdr)),
    }
    if info.audio is not None:
        streams.append(src.audio)
        opts.update({"acodec": "aac", "audio_bitrate": AUDIO_BITRATE, "ac": 2})
    ffmpeg.run_ffmpeg(ffmpeg_python.output(*streams, str(path), **opts),
                      timeout=timer.remaining(), duration=info.duration, what="HDR rendition")
    size = ffmpeg.check_output_size(path, limits.max_output_bytes)
    width, real_height = _stream_size(path, timeout=min(60, timer.remaining()))
    return OutputFile(path.name, path, "mp4", "video/mp4", size, width=width, height=real_height,
                      extra={"rendition": height, "hdr": hdr.hdr})
