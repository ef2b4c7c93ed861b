"""HEIC/HEIF and BMP photos: sniffed, guarded, upright, converted to sRGB and stripped like any image.

The HEIC files are made by a real encoder (pillow-heif: libheif with x265); colours are checked
against littleCMS (Pillow's ImageCms) converting the same decoded pixels.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms

from jobs import JobInput, probe, run_job
from jobs.errors import PermanentJobError
from tests import media_factories as mf

#: Largest per-channel difference (0-255) allowed between a WebP variant's patch and the reference:
#: WebP at quality 80 keeps the inside of flat patches within a few levels.
PATCH_TOLERANCE = 4


def _mean(im: Image.Image, x: int, y: int, r: int = 6) -> np.ndarray:
    box = np.asarray(im.convert("RGB"), dtype=float)[y - r:y + r, x - r:x + r]
    return box.reshape(-1, 3).mean(axis=0)


@pytest.fixture(scope="module")
def prophoto(tmp_path_factory: pytest.TempPathFactory):
    """A ProPhoto RGB HEIC, orientation 6 and GPS, and the thumbnail job's result for it."""
    d = tmp_path_factory.mktemp("heic")
    src = mf.heic(d, "wide.heic", orientation=6, icc=mf.PROPHOTO_ICC.read_bytes(), gps=True)
    work = d / "work"
    work.mkdir()
    return src, run_job("thumbnail", JobInput(src, work, {"formats": ["webp", "jpeg"]}))


def test_heic_sniffed_from_content(tmp_path: Path) -> None:
    """A HEIC named .jpg is HEIC by its ftyp brand, and a decodable image."""
    src = mf.heic(tmp_path, "looks_like.jpg", size=(64, 48))
    sniffed = probe.sniff(src)
    assert (sniffed.mime, sniffed.kind, sniffed.decoder) == ("image/heic", "image", "HEIF")


def test_heic_variants_upright(prophoto) -> None:
    """Orientation 6 (stored as the HEIF rotation) gives portrait variants with the marker top-right."""
    _src, result = prophoto
    out = next(o for o in result.outputs if o.name == "thumb_320.webp")
    assert (out.width, out.height) == (320, 480)
    assert (result.data["width"], result.data["height"]) == (320, 480)
    with Image.open(out.path) as im:
        assert _mean(im, 310, 8, r=4).min() > 235  # the white marker, turned to the top-right


def test_heic_wide_gamut_converted_like_littlecms(prophoto) -> None:
    """Every patch of the ProPhoto HEIC matches littleCMS's sRGB conversion of the decoded pixels."""
    src, result = prophoto
    reference_heif = pillow_heif.open_heif(src, convert_hdr_to_8bit=True)
    raw = reference_heif.to_pillow()  # libheif's decode, rotation applied
    assert raw.size == (320, 480)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(reference_heif.info["icc_profile"]))
    reference = ImageCms.profileToProfile(raw.convert("RGB"), profile, ImageCms.createProfile("sRGB"))
    out = next(o for o in result.outputs if o.name == "thumb_320.webp")
    converted_somewhere = False
    with Image.open(out.path) as im:
        for x, y in mf.patch_centres((480, 320)):
            ux, uy = 320 - 1 - y, x  # stored (x, y) seen after a quarter turn clockwise
            want, got = _mean(reference, ux, uy), _mean(im, ux, uy)
            assert np.abs(got - want).max() <= PATCH_TOLERANCE, (x, y, got, want)
            converted_somewhere |= np.abs(_mean(raw, ux, uy) - want).max() > 20
    assert converted_somewhere  # ProPhoto really differs from sRGB on these patches


def test_heic_metadata_and_gps_stripped(prophoto) -> None:
    """No HEIC-derived variant carries EXIF, GPS, XMP, the phone's make or a profile."""
    _src, result = prophoto
    for out in result.outputs:
        data = out.path.read_bytes()
        assert b"Exif" not in data and b"TestPhone" not in data
        with Image.open(out.path) as im:
            assert not im.getexif() and "icc_profile" not in im.info and "xmp" not in im.info


def test_heic_primary_image_of_a_burst(tmp_path: Path, workdir: Path) -> None:
    """A multi-image HEIC gives variants of its primary image, not of the first one stored."""
    src = mf.heic(tmp_path, "burst.heic", size=(320, 240), burst=((20, 160, 40), (200, 60, 200)))
    result = run_job("thumbnail", JobInput(src, workdir, {"formats": ["jpeg"]}))
    out = next(o for o in result.outputs if o.name == "thumb_320.jpg")
    with Image.open(out.path) as im:
        assert np.abs(_mean(im, 160, 120) - (200, 60, 200)).max() <= 6


def test_heic_bomb_refused_before_decoding(tmp_path: Path, workdir: Path) -> None:
    """A 1 kB HEIC declaring 30000x30000 pixels fails on the pixel limit, like a PNG bomb."""
    src = mf.heic_bomb(tmp_path)
    assert src.stat().st_size < 4096
    with pytest.raises(PermanentJobError, match=r"30000x30000 pixels, above the 50 MP limit"):
        run_job("thumbnail", JobInput(src, workdir))


def test_truncated_heic_fails_readably(tmp_path: Path, workdir: Path) -> None:
    """A HEIC cut short fails with a permanent error naming the problem, not a crash."""
    src = mf.truncated(mf.heic(tmp_path, "whole.heic", size=(256, 256)), keep=0.5)
    with pytest.raises(PermanentJobError, match=r"HEIF image (header could not be read|could not be opened)|image data is corrupt"):
        run_job("thumbnail", JobInput(src, workdir))


def test_heic_metadata_record(tmp_path: Path, workdir: Path) -> None:
    """The metadata job reads a HEIC's header: upright size, format, GPS presence only."""
    src = mf.heic(tmp_path, "meta.heic", size=(200, 100), orientation=8, gps=True)
    data = run_job("metadata", JobInput(src, workdir)).data
    assert data["mime_type"] == "image/heic" and data["kind"] == "image"
    assert (data["format"], data["display_width"], data["display_height"]) == ("HEIF", 100, 200)
    assert "48" not in str(data["exif"])


def test_bmp_gets_variants(tmp_path: Path, workdir: Path) -> None:
    """A BMP original is an image with the usual ladder, not a plain document."""
    src = mf.image(tmp_path, "scan.bmp", size=(400, 300), fmt="BMP")
    assert probe.sniff(src).mime == "image/bmp"
    result = run_job("thumbnail", JobInput(src, workdir, {"formats": ["webp"]}))
    assert {o.name for o in result.outputs} == {"thumb_400.webp", "thumb_320.webp", "thumb_160.webp"}


def test_text_starting_with_bm_is_not_a_bitmap(tmp_path: Path) -> None:
    """A text file that happens to start with "BM" stays a document."""
    path = tmp_path / "notes.txt"
    path.write_text("BMW service notes: oil changed, tyres rotated, brakes fine.\n")
    assert probe.sniff(path).kind == "document"


#: PQ signal values of greys and colours from about 5 to 400 cd/m² (HDR stills are mostly mid-tones).
PQ_PATCHES = ((64, 64, 64), (102, 102, 102), (128, 128, 128), (166, 166, 166),
              (150, 110, 100), (110, 140, 110), (105, 110, 150), (140, 135, 105))
#: zscale/tonemap chains converting the same decoded pixels, per (primaries, transfer) code points.
_ZIMG_REFERENCE = {
    (12, 13): "zscale=pin=smpte432:tin=iec61966-2-1:p=bt709:t=iec61966-2-1,format=rgb24",
    (9, 16): "zscale=pin=bt2020:tin=smpte2084:t=linear:npl=100:p=bt709,format=gbrpf32le,"
             "tonemap=tonemap=hable:desat=0:peak=10,zscale=t=iec61966-2-1,format=rgb24",
    (9, 18): "zscale=pin=bt2020:tin=arib-std-b67:t=linear:npl=100:p=bt709,format=gbrpf32le,"
             "tonemap=tonemap=hable:desat=0:peak=10,zscale=t=iec61966-2-1,format=rgb24",
}


@pytest.mark.parametrize("nclx", [(12, 13), (9, 16), (9, 18)],
                         ids=["display-p3", "bt2020-pq", "bt2020-hlg"])
def test_heic_nclx_converted_like_zimg(tmp_path: Path, workdir: Path, nclx: tuple[int, int]) -> None:
    """A HEIC whose colour is given as nclx code points (no ICC): Display P3, or HDR (PQ, HLG)
    tone-mapped, matches zimg and ffmpeg's tonemap (``zscale``) converting the same decoded pixels."""
    src = mf.heic(tmp_path, "nclx.heic", nclx=nclx,
                  patches=PQ_PATCHES if nclx[1] == 16 else mf.PATCHES)
    decoded = pillow_heif.open_heif(src)
    assert "icc_profile" not in decoded.info
    assert decoded.info["nclx_profile"]["color_primaries"] == nclx[0]
    raw = tmp_path / "raw.png"
    decoded.to_pillow().save(raw)
    ref_path = tmp_path / "reference.png"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(raw), "-vf",
                    _ZIMG_REFERENCE[nclx], str(ref_path)], check=True, capture_output=True,
                   timeout=60)
    result = run_job("thumbnail", JobInput(src, workdir, {"formats": ["webp"], "widths": [480]}))
    converted_somewhere = False
    with Image.open(ref_path) as reference, Image.open(result.outputs[0].path) as im, \
            Image.open(raw) as unconverted:
        for x, y in mf.patch_centres((480, 320)):
            want, got = _mean(reference, x, y), _mean(im, x, y)
            assert np.abs(got - want).max() <= PATCH_TOLERANCE, (x, y, got, want)
            converted_somewhere |= np.abs(_mean(unconverted, x, y) - want).max() > 10
    assert converted_somewhere


def test_oversized_heif_file_refused(tmp_path: Path, workdir: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A HEIF file above the HEIF byte limit (held whole in memory by libheif) fails readably."""
    src = mf.heic(tmp_path, "big.heic", size=(256, 256))
    monkeypatch.setattr(probe, "MAX_HEIF_FILE_BYTES", src.stat().st_size - 1)
    with pytest.raises(PermanentJobError, match=r"above the \d+ byte limit for HEIF images"):
        run_job("thumbnail", JobInput(src, workdir))
