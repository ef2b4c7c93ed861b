"""HLS master playlists that tell players the truth about each rendition.

ffmpeg (5.1, Debian 12) writes a master playlist when it packages a stream copy, but only its
RESOLUTION is right: its BANDWIDTH is the declared stream bit rate (an average, and absent for CRF
encodes), and it writes no CODECS, AVERAGE-BANDWIDTH or FRAME-RATE. So RESOLUTION is taken from
ffmpeg's playlist and the rest is measured here (RFC 8216, section 4.3.4.2):

- BANDWIDTH: the peak segment bit rate, the largest ``bytes × 8 / duration`` over the segments the
  media playlist actually lists (video and audio together, container overhead included);
- AVERAGE-BANDWIDTH: all segment bytes × 8 over the playlist's total duration;
- CODECS: from the encoded stream itself (the H.264 ``avcC`` record: profile, constraint flags and
  level as ffprobe reads them; the AAC object type from ffprobe's profile);
- FRAME-RATE: the encoded stream's average frame rate.

The transcript is a separate job that may finish after the transcode, and a player that is offered
a subtitles rendition it cannot load stops (hls.js 1.7 raises a fatal fragLoadError for the missing
WebVTT). So two master playlists are written: ``master.m3u8`` without subtitles, always playable,
and ``master_with_transcript.m3u8``, the same variants plus a subtitles rendition
(``EXT-X-MEDIA:TYPE=SUBTITLES``) whose media playlist has one segment, the transcript job's
``transcript.vtt``, at its deterministic key next to the ``hls/`` folder. The transcript joins the
stream by the application handing players the second playlist once the asset's variants include
``transcript.vtt``; nothing is rewritten. The WebVTT file has no ``X-TIMESTAMP-MAP``, so cue time 0
is MPEG-TS time 0 (RFC 8216, 3.5): segments are written without ffmpeg's default 1.4 s mux delay,
so both timelines start together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.errors import PermanentJobError

#: AAC object types (RFC 6381 ``mp4a.40.N``) by the profile name ffprobe reports.
_AAC_OBJECT_TYPE = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29, "Main": 1, "LTP": 4}

SUBTITLES_GROUP = "subs"

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass(frozen=True)
class Variant:
    """One rendition as the master playlist declares it."""

    uri: str
    bandwidth: int
    average_bandwidth: int
    codecs: str
    resolution: str
    frame_rate: float | None


def attributes(line: str) -> dict[str, str]:
    """The attribute list of a playlist tag line (``#EXT-X-STREAM-INF:A=1,B="x,y"``), unquoted."""
    _tag, _, rest = line.partition(":")
    return {k: v.strip('"') for k, v in _ATTRIBUTE.findall(rest)}


def segments(playlist: Path) -> list[tuple[Path, float]]:
    """(segment file, EXTINF duration) for every segment of a VOD media playlist."""
    found: list[tuple[Path, float]] = []
    duration: float | None = None
    for line in playlist.read_text().splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line.removeprefix("#EXTINF:").partition(",")[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise PermanentJobError(f"HLS playlist {playlist.name} lists a segment without EXTINF")
            found.append((playlist.parent / line, duration))
            duration = None
    if not found:
        raise PermanentJobError(f"HLS playlist {playlist.name} lists no segment")
    return found


def segment_bit_rates(playlist: Path) -> tuple[int, int]:
    """Peak and average bit rate in bit/s over the segments ``playlist`` lists, rounded up."""
    peak, total_bits, total_seconds = 0.0, 0, 0.0
    for path, seconds in segments(playlist):
        bits = path.stat().st_size * 8
        total_bits += bits
        total_seconds += seconds
        peak = max(peak, bits / max(seconds, 0.001))
    return math.ceil(peak), math.ceil(total_bits / max(total_seconds, 0.001))


def _extradata(stream: dict[str, Any]) -> bytes:
    """The codec extradata of an ffprobe stream printed with ``-show_data`` (a hex dump)."""
    raw = bytearray()
    for line in str(stream.get("extradata", "")).splitlines():
        _offset, sep, rest = line.partition(": ")
        if sep:
            raw += bytes.fromhex(rest[:40].replace(" ", ""))
    return bytes(raw)


def video_codec(stream: dict[str, Any]) -> str:
    """RFC 6381 codec string of an H.264 stream, from its ``avcC`` record (``avc1.PPCCLL``)."""
    if stream.get("codec_name") != "h264":
        raise PermanentJobError(f"HLS renditions must be H.264, not {stream.get('codec_name')}")
    avcc = _extradata(stream)
    if len(avcc) >= 4 and avcc[0] == 1:
        return f"avc1.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"
    raise PermanentJobError("the H.264 rendition carries no avcC record to name its codec from")


def audio_codec(stream: dict[str, Any]) -> str:
    """RFC 6381 codec string of an AAC stream (``mp4a.40.N``)."""
    if stream.get("codec_name") != "aac":
        raise PermanentJobError(f"HLS audio must be AAC, not {stream.get('codec_name')}")
    return f"mp4a.40.{_AAC_OBJECT_TYPE.get(str(stream.get('profile')), 2)}"


def frame_rate(stream: dict[str, Any]) -> float | None:
    num, _, den = str(stream.get("avg_frame_rate", "")).partition("/")
    if num.isdigit() and den.isdigit() and int(den):
        return round(int(num) / int(den), 3)
    return None


def subtitles_playlist(vtt_uri: str, duration: float) -> str:
    """A VOD media playlist whose one segment is the whole WebVTT file at ``vtt_uri``."""
    return "\n".join([
        "#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{math.ceil(duration)}",
        "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD", f"#EXTINF:{duration:.3f},",
        vtt_uri, "#EXT-X-ENDLIST",
    ]) + "\n"


def master_playlist(variants: Sequence[Variant], subtitles_uri: str | None = None) -> str:
    """The text of a master playlist declaring ``variants``, highest bandwidth first, and the
    subtitles rendition at ``subtitles_uri`` when given."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if subtitles_uri:
        lines.append(f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLES_GROUP}",NAME="Transcript",'
                     f'DEFAULT=NO,AUTOSELECT=YES,URI="{subtitles_uri}"')
    for v in sorted(variants, key=lambda v: v.bandwidth, reverse=True):
        attrs = [f"BANDWIDTH={v.bandwidth}", f"AVERAGE-BANDWIDTH={v.average_bandwidth}",
                 f'CODECS="{v.codecs}"', f"RESOLUTION={v.resolution}"]
        if v.frame_rate:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        if subtitles_uri:
            attrs.append(f'SUBTITLES="{SUBTITLES_GROUP}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v.uri]
    return "\n".join(lines) + "\n"
