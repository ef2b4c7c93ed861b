"""HDR video to SDR, and colour tags on every video output, checked with ffprobe and ffmpeg's decoder.

The reference for tone-mapped colours is numeric, from the published standards, not from our code:
HLG inverse OETF (BT.2100) and its OOTF for a 1000 cd/m² display (system gamma 1.2, which zimg
applies per component), PQ EOTF (SMPTE ST 2084), BT.2020 to BT.709 primaries (BT.2087), Hable's
filmic curve (peak 1000 cd/m², 100 cd/m² white) scaling R, G and B by the same factor, and a BT.1886
display (gamma 2.4). The rendition is decoded by ffmpeg to RGB the way a player would (its tags).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jobs import JobInput, run_job
from jobs.errors import PermanentJobError
from tests import media_factories as mf

SIZE = (640, 360)
#: Per-channel tolerance (0-255): greys go through luminance only; colours also through 4:2:0
#: chroma and the H.264 encode of the rendition, and zimg's approximation of the HLG OOTF.
GREY_TOLERANCE = 3
COLOUR_TOLERANCE = 6

_BT2020_TO_XYZ = np.array([[0.636958, 0.144617, 0.168881],
                           [0.262700, 0.677998, 0.059302],
                           [0.000000, 0.028073, 1.060985]])
_BT709_TO_XYZ = np.array([[0.412391, 0.357584, 0.180481],
                          [0.212639, 0.715169, 0.072192],
                          [0.019331, 0.119195, 0.950532]])
_BT2020_TO_BT709 = np.linalg.solve(_BT709_TO_XYZ, _BT2020_TO_XYZ)


def _hlg_display_nits(signal: np.ndarray) -> np.ndarray:
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    scene = np.where(signal <= 0.5, signal**2 / 3, (np.exp((signal - c) / a) + b) / 12)
    return 1000.0 * scene**1.2


def _pq_nits(signal: np.ndarray) -> np.ndarray:
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    p = signal ** (1 / m2)
    return 10000.0 * (np.maximum(p - c1, 0) / (c2 - c3 * p)) ** (1 / m1)


def _hable(x: float) -> float:
    a, b, c, d, e, f = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
    return (x * (x * a + b * c) + d * e) / (x * (x * a + b) + d * f) - e / f


def reference_sdr(patch: tuple[int, int, int], transfer: str) -> np.ndarray:
    """The 8-bit BT.709 R'G'B' a tone-mapped patch should show, from the standards' equations."""
    signal = np.array(patch) / 255.0
    nits = _hlg_display_nits(signal) if transfer == "arib-std-b67" else _pq_nits(signal)
    linear = _BT2020_TO_BT709 @ (nits / 100.0)
    peak = max(float(linear.max()), 1e-6)
    linear = np.clip(linear * _hable(peak) / _hable(10.0) / peak, 0, 1)
    return linear ** (1 / 2.4) * 255


def _probe_colour(path: Path) -> dict[str, str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,pix_fmt,color_primaries,color_transfer,color_space,color_range",
         "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["streams"][0]


def _decoded_frame(path: Path, at: float = 0.5) -> Image.Image:
    """One frame as RGB, converted by ffmpeg with the matrix and range the file is tagged with."""
    tags = _probe_colour(path)
    matrix = {"bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "bt470"}[tags["color_space"]]
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", str(at), "-i", str(path), "-frames:v", "1", "-vf",
         f"scale=in_color_matrix={matrix}:in_range={tags['color_range']}:out_range=pc,format=rgb24",
         "-f", "image2pipe", "-c:v", "png", "-"], capture_output=True, check=True)
    import io
    return Image.open(io.BytesIO(out.stdout)).convert("RGB")


def _mean(im: Image.Image, x: int, y: int, r: int = 8) -> np.ndarray:
    return np.asarray(im, dtype=float)[y - r:y + r, x - r:x + r].reshape(-1, 3).mean(axis=0)


def _check_patches(frame: Image.Image, transfer: str, scale: float = 1.0, slack: float = 0) -> None:
    for patch, (x, y) in zip(mf.PATCHES, mf.patch_centres(SIZE), strict=True):
        want = reference_sdr(patch, transfer)
        got = _mean(frame, round(x * scale), round(y * scale), r=max(2, round(8 * scale)))
        grey = len(set(patch)) == 1
        bound = (GREY_TOLERANCE if grey else COLOUR_TOLERANCE) + slack
        assert np.abs(got - want).max() <= bound, (patch, got.round(1), want.round(1))


@pytest.fixture(scope="module")
def hlg(media: Path) -> Path:
    """One second of 10-bit HEVC HLG (BT.2020) colour patches, as phones record HDR."""
    return mf.hdr_video(media, "hlg.mp4", transfer="arib-std-b67", size=SIZE)


@pytest.fixture(scope="module")
def pq(media: Path) -> Path:
    """One second of 10-bit HEVC PQ (BT.2020) colour patches without light-level metadata."""
    return mf.hdr_video(media, "pq.mp4", transfer="smpte2084", size=SIZE,
                        patches=PQ_PATCHES)


#: PQ signal levels of about 5, 20, 90 and 400 cd/m² greys, and colours around 100-300 cd/m².
PQ_PATCHES = ((64, 64, 64), (102, 102, 102), (128, 128, 128), (166, 166, 166),
              (150, 110, 100), (110, 140, 110), (105, 110, 150), (140, 135, 105))


@pytest.fixture(scope="module")
def hlg_transcode(hlg: Path, tmp_path_factory: pytest.TempPathFactory):
    """The transcode job on the HLG clip, with the optional 10-bit HDR rendition."""
    work = tmp_path_factory.mktemp("hlg_transcode")
    return run_job("transcode", JobInput(hlg, work, {"renditions": [360], "hdr": "keep"}))


def test_hlg_detected(hlg: Path, workdir: Path) -> None:
    """The metadata job records an HLG source's colour and calls it HDR."""
    data = run_job("metadata", JobInput(hlg, workdir)).data
    assert data["video"]["colour"]["hdr"] == "hlg"
    assert data["video"]["colour"]["primaries"] == "bt2020"


def test_hlg_rendition_tagged_bt709(hlg_transcode) -> None:
    """The H.264 rendition of an HLG clip is 8-bit 4:2:0 tagged BT.709 in all four properties."""
    mp4 = next(o for o in hlg_transcode.outputs if o.name == "video_360p.mp4")
    tags = _probe_colour(mp4.path)
    assert tags["codec_name"] == "h264" and tags["pix_fmt"] == "yuv420p"
    assert (tags["color_primaries"], tags["color_transfer"], tags["color_space"],
            tags["color_range"]) == ("bt709", "bt709", "bt709", "tv")
    assert hlg_transcode.data["tone_mapped"] is True


def test_hlg_rendition_matches_reference_tonemapping(hlg_transcode) -> None:
    """Every patch of the HLG clip's SDR rendition is within tolerance of the standards' reference."""
    mp4 = next(o for o in hlg_transcode.outputs if o.name == "video_360p.mp4")
    _check_patches(_decoded_frame(mp4.path), "arib-std-b67", scale=mp4.height / SIZE[1])


def test_hlg_kept_as_10_bit_hevc_on_request(hlg_transcode) -> None:
    """``{"hdr": "keep"}`` adds a 10-bit HEVC rendition still tagged BT.2020 HLG."""
    hdr = next(o for o in hlg_transcode.outputs if o.name == "video_360p_hdr.mp4")
    tags = _probe_colour(hdr.path)
    assert (tags["codec_name"], tags["pix_fmt"]) == ("hevc", "yuv420p10le")
    assert (tags["color_primaries"], tags["color_transfer"], tags["color_space"]) == (
        "bt2020", "arib-std-b67", "bt2020nc")


def test_no_hdr_rendition_by_default(pq: Path, workdir: Path) -> None:
    """Without ``hdr: keep`` an HDR source gets SDR renditions only; PQ is tone-mapped like HLG."""
    result = run_job("transcode", JobInput(pq, workdir, {"renditions": [360]}))
    assert [o.name for o in result.outputs] == ["video_360p.mp4"]
    mp4 = result.outputs[0]
    tags = _probe_colour(mp4.path)
    assert (tags["color_primaries"], tags["color_transfer"], tags["color_space"]) == (
        "bt709", "bt709", "bt709")
    for patch, (x, y) in zip(PQ_PATCHES, mf.patch_centres(SIZE), strict=True):
        want = reference_sdr(patch, "smpte2084")
        got = _mean(_decoded_frame(mp4.path), x, y)
        bound = GREY_TOLERANCE if len(set(patch)) == 1 else COLOUR_TOLERANCE
        assert np.abs(got - want).max() <= bound, (patch, got.round(1), want.round(1))


def test_unknown_hdr_mode_refused(hlg: Path, workdir: Path) -> None:
    """An ``hdr`` parameter other than tonemap or keep fails the job readably."""
    with pytest.raises(PermanentJobError, match="hdr must be one of"):
        run_job("transcode", JobInput(hlg, workdir, {"hdr": "auto"}))


@pytest.fixture(scope="module")
def hlg_thumbs(hlg: Path, tmp_path_factory: pytest.TempPathFactory):
    """The thumbnail job (poster ladder in WebP, storyboard) on the HLG clip."""
    work = tmp_path_factory.mktemp("hlg_thumbs")
    return run_job("thumbnail", JobInput(hlg, work, {"formats": ["webp"]}))


def test_hlg_poster_tonemapped(hlg_thumbs) -> None:
    """The HLG clip's poster shows the same tone-mapped colours as its rendition (the reference)."""
    poster = next(o for o in hlg_thumbs.outputs if o.name == "poster_640.webp")
    with Image.open(poster.path) as im:
        _check_patches(im.convert("RGB"), "arib-std-b67", slack=2)


def test_hlg_storyboard_tonemapped(hlg_thumbs) -> None:
    """The storyboard tile of the HLG clip shows the reference's greys (JPEG, 160 px wide)."""
    sprite = next(o for o in hlg_thumbs.outputs if o.name == "storyboard.jpg")
    with Image.open(sprite.path) as im:
        tile = im.convert("RGB").crop((0, 0, 160, 90))
        _check_patches(tile, "arib-std-b67", scale=0.25, slack=4)


@pytest.mark.parametrize(("tagged", "full_range"), [(True, False), (False, False), (True, True)],
                         ids=["tagged", "untagged", "full-range"])
def test_sdr_rendition_tagged_and_poster_consistent(media: Path, tmp_path: Path, tagged: bool,
                                                    full_range: bool) -> None:
    """A BT.709 clip, tagged or not, full range or not, gets a limited-range rendition tagged BT.709
    and a poster with the colours a player shows for it (a BT.601 poster would shift the saturated
    patches by 5 to 20 levels, a range mix-up every patch)."""
    src = mf.sdr_patch_video(media, f"sdr709_{tagged}_{full_range}.mp4", size=SIZE, tagged=tagged,
                             full_range=full_range)
    assert (_probe_colour(src).get("color_space") == "bt709") is tagged
    work_t, work_p = tmp_path / "t", tmp_path / "p"
    work_t.mkdir()
    work_p.mkdir()
    mp4 = run_job("transcode", JobInput(src, work_t, {"renditions": [360]})).outputs[0]
    tags = _probe_colour(mp4.path)
    assert (tags["color_primaries"], tags["color_transfer"], tags["color_space"],
            tags["color_range"]) == ("bt709", "bt709", "bt709", "tv")
    thumbs = run_job("thumbnail", JobInput(src, work_p, {"formats": ["webp"], "storyboard": False}))
    poster = next(o for o in thumbs.outputs if o.name == "poster_640.webp")
    frame = _decoded_frame(mp4.path)
    with Image.open(poster.path) as im:
        for patch, (x, y) in zip(mf.PATCHES, mf.patch_centres(SIZE), strict=True):
            got, want = _mean(im.convert("RGB"), x, y), _mean(frame, x, y)
            assert np.abs(got - want).max() <= 3, (patch, got, want)
            assert np.abs(want - patch).max() <= 3  # and both are the source's own colours


def test_hlg_ladder_below_source_size(hlg: Path, workdir: Path) -> None:
    """A ladder below the source's size is tone-mapped at its top size: right sizes, same colours."""
    result = run_job("transcode", JobInput(hlg, workdir, {"renditions": [240, 180]}))
    sizes = {o.name: (o.width, o.height) for o in result.outputs}
    assert sizes == {"video_240p.mp4": (426, 240), "video_180p.mp4": (320, 180)}
    for out in result.outputs:
        _check_patches(_decoded_frame(out.path), "arib-std-b67", scale=out.height / SIZE[1],
                       slack=2)


def test_pq_kept_with_hdr10_signalling(pq: Path, workdir: Path) -> None:
    """``{"hdr": "keep"}`` on a PQ source gives 10-bit HEVC tagged BT.2020 PQ next to the SDR one."""
    result = run_job("transcode", JobInput(pq, workdir, {"renditions": [360], "hdr": "keep"}))
    assert [o.name for o in result.outputs] == ["video_360p.mp4", "video_360p_hdr.mp4"]
    tags = _probe_colour(result.outputs[1].path)
    assert (tags["codec_name"], tags["pix_fmt"], tags["color_primaries"], tags["color_transfer"],
            tags["color_space"], tags["color_range"]) == (
        "hevc", "yuv420p10le", "bt2020", "smpte2084", "bt2020nc", "tv")
    assert result.data["hdr_rendition"] is True and result.data["source_colour"]["hdr"] == "pq"


def test_keep_on_sdr_source_adds_nothing(media: Path, workdir: Path) -> None:
    """``{"hdr": "keep"}`` on an SDR source adds no HDR rendition."""
    src = mf.sdr_patch_video(media, "sdr_keep.mp4", size=SIZE)
    result = run_job("transcode", JobInput(src, workdir, {"renditions": [360], "hdr": "keep"}))
    assert [o.name for o in result.outputs] == ["video_360p.mp4"]
    assert result.data["hdr_rendition"] is False and result.data["tone_mapped"] is False
