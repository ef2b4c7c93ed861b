"""Limits that guard the workers against hostile and oversized input.

Each limit is named for what it guards, with its unit. The worker builds one ``MediaLimits`` from
settings (``contentforge.settings``) and passes it to every job; the defaults here are the documented
defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaLimits:
    #: Largest decoded image, in pixels. A decompression bomb declares huge dimensions in a tiny
    #: file; 50 MP is imgproxy's default and covers every camera sensor in common use.
    max_image_pixels: int = 50_000_000
    #: Largest width or height of a video stream, in pixels (8K is 7680).
    max_video_dimension: int = 8192
    #: Longest audio or video, in seconds: bounds transcode and transcript time.
    max_duration_seconds: float = 4 * 3600
    #: Most frames an animated image may have: each is decoded in turn.
    max_animation_frames: int = 1000
    #: Largest source file, in bytes.
    max_source_bytes: int = 5 * 1024**3
    #: Largest single output file, in bytes: a runaway encode must not fill the disk.
    max_output_bytes: int = 2 * 1024**3
    #: Wall-clock limit for one external process (ffmpeg, ffprobe), in seconds.
    max_process_seconds: float = 3600.0
    #: Threads one ffmpeg run may use for its decoders, encoders and filters: the worker thread's
    #: share of the cores, so that concurrent encodes do not oversubscribe the CPU (each ffmpeg
    #: otherwise starts about as many threads per encoder as the machine has cores). 0: no budget,
    #: ffmpeg's own default. The worker resolves its setting (0 there means "auto") to a count.
    ffmpeg_threads: int = 0
