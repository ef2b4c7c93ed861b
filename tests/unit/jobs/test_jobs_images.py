"""Image variants: the ladder, formats, orientation, metadata stripping and placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from jobs import JobInput, run_job
from jobs.errors import PermanentJobError
from tests import media_factories as mf

EXPECTED_NAMES = {f"thumb_{w}.{ext}" for w in (160, 320, 640, 1280) for ext in ("webp", "avif", "jpg")}


@pytest.fixture(scope="module")
def photo_result(tmp_path_factory: pytest.TempPathFactory):
    """The thumbnail job run once on a 1500x1000 JPEG with orientation 6 and GPS tags."""
    d = tmp_path_factory.mktemp("photo")
    src = mf.image(d, "photo.jpg", size=(1500, 1000), orientation=6, gps=True)
    work = d / "work"
    work.mkdir()
    return run_job("thumbnail", JobInput(src, work))


def test_ladder_names_formats_and_sizes(photo_result) -> None:
    """A 1000 px wide (upright) photo gets 1000 (its own width, below the 1280 step) and
    160/320/640 in three formats, nothing wider."""
    names = {o.name for o in photo_result.outputs}
    own = {f"thumb_1000.{ext}" for ext in ("webp", "avif", "jpg")}
    assert names == {n for n in EXPECTED_NAMES if not n.startswith("thumb_1280")} | own
    for out in photo_result.outputs:
        with Image.open(out.path) as im:
            assert im.format == {"webp": "WEBP", "avif": "AVIF", "jpeg": "JPEG"}[out.format]
            assert im.size == (out.width, out.height)
            assert out.width == int(out.name.split("_")[1].split(".")[0])
            assert out.bytes == out.path.stat().st_size


def test_orientation_applied(photo_result) -> None:
    """EXIF orientation 6 turns a landscape original into portrait variants, marker top-right."""
    out = next(o for o in photo_result.outputs if o.name == "thumb_640.jpg")
    assert (out.width, out.height) == (640, 960)
    with Image.open(out.path) as im:
        r, g, b = im.convert("RGB").getpixel((im.width - 10, 10))
    assert r > 180 and g < 80 and b < 80


def test_no_metadata_in_any_output(photo_result) -> None:
    """No variant carries EXIF, GPS, XMP or the camera's make."""
    for out in photo_result.outputs:
        data = out.path.read_bytes()
        assert b"Exif" not in data and b"TestCam" not in data and b"GPS" not in data
        with Image.open(out.path) as im:
            assert not im.getexif()
            assert "exif" not in im.info and "xmp" not in im.info


def test_placeholders(photo_result) -> None:
    """The result carries a 4x3 blurhash and the photo's dominant blue as #rrggbb."""
    data = photo_result.data
    assert len(data["blurhash"]) == 28  # 4x3 components
    r, _g, b = (int(data["dominant_color"][i:i + 2], 16) for i in (1, 3, 5))
    assert b > r and b > 120
    assert (data["width"], data["height"]) == (1000, 1500)


def test_never_upscaled(tmp_path: Path, workdir: Path) -> None:
    """An image narrower than every ladder step yields one set of variants at its own width."""
    src = mf.image(tmp_path, "tiny.png", size=(100, 60), fmt="PNG")
    result = run_job("thumbnail", JobInput(src, workdir))
    assert {(o.name, o.width, o.height) for o in result.outputs} == {
        ("thumb_100.webp", 100, 60), ("thumb_100.avif", 100, 60), ("thumb_100.jpg", 100, 60)}


def test_custom_widths_and_formats(tmp_path: Path, workdir: Path) -> None:
    """widths and formats parameters pick the ladder and the encoders."""
    src = mf.image(tmp_path, size=(800, 400))
    result = run_job("thumbnail", JobInput(src, workdir, {"widths": [200, 400], "formats": ["webp"]}))
    assert sorted(o.name for o in result.outputs) == ["thumb_200.webp", "thumb_400.webp"]


def test_alpha_kept_in_webp_flattened_in_jpeg(tmp_path: Path, workdir: Path) -> None:
    """A transparent PNG keeps alpha in WebP and gets a white background in JPEG."""
    src = mf.image(tmp_path, "alpha.png", size=(400, 400), fmt="PNG", mode="RGBA")
    result = run_job("thumbnail", JobInput(src, workdir, {"widths": [320]}))
    by_name = {o.name: o for o in result.outputs}
    with Image.open(by_name["thumb_320.webp"].path) as im:
        assert im.mode == "RGBA" and im.getpixel((300, 300))[3] == 0
    with Image.open(by_name["thumb_320.jpg"].path) as im:
        assert im.getpixel((300, 300)) == pytest.approx((255, 255, 255), abs=3)


def test_bad_widths_refused(tmp_path: Path, workdir: Path) -> None:
    """A width of 0 is a permanent error naming the parameter."""
    src = mf.image(tmp_path, size=(200, 200))
    with pytest.raises(PermanentJobError, match="widths item must be between 16 and 4096"):
        run_job("thumbnail", JobInput(src, workdir, {"widths": [0]}))


@pytest.mark.slow
def test_24mp_jpeg_full_ladder(tmp_path: Path, workdir: Path) -> None:
    """A 6000x4000 JPEG yields the full default ladder, 1920 wide at most, via draft decoding."""
    src = mf.image(tmp_path, "big.jpg", size=(6000, 4000))
    result = run_job("thumbnail", JobInput(src, workdir))
    widths = sorted({o.width for o in result.outputs})
    assert widths == [160, 320, 640, 1280, 1920]
    assert len(result.outputs) == 15


def test_works_in_a_fresh_process(tmp_path: Path) -> None:
    """The thumbnail job works in a new interpreter, before Pillow has loaded its plugins."""
    import subprocess
    import sys

    src = mf.image(tmp_path, "fresh.jpg", size=(400, 300))
    code = ("import sys; from pathlib import Path; from jobs import JobInput, run_job; "
            "r = run_job('thumbnail', JobInput(Path(sys.argv[1]), Path(sys.argv[2]))); "
            "print(len(r.outputs))")
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path)], cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "9"  # 400 (its own width), 320 and 160 wide, three formats each


def test_ladder_reaches_the_source_width(tmp_path: Path, workdir: Path) -> None:
    """A 1900 px photo (between the 1280 and 1920 steps) gets a 1900 px top variant, never an
    upscaled 1920 one, at the size Pillow decodes."""
    src = mf.photo(tmp_path, size=(1900, 1200))
    result = run_job("thumbnail", JobInput(src, workdir, {"formats": ["webp"]}))
    assert sorted(o.width for o in result.outputs) == [160, 320, 640, 1280, 1900]
    top = next(o for o in result.outputs if o.name == "thumb_1900.webp")
    with Image.open(top.path) as im:
        assert im.size == (1900, 1200)
