"""The optimize job: a lighter, visually equal copy, or nothing."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from jobs import JobInput, run_job
from tests import media_factories as mf


def test_heavy_jpeg_gets_lighter_copy(tmp_path: Path, workdir: Path) -> None:
    """A quality-100 JPEG gets an optimized.jpg that is smaller, PSNR >= 40 dB and metadata-free."""
    src = mf.photo(tmp_path, "heavy.jpg", size=(1200, 800), quality=100, gps=True)
    result = run_job("optimize", JobInput(src, workdir))
    assert result.data["optimized"] is True
    (out,) = result.outputs
    assert out.name == "optimized.jpg" and out.bytes < 0.9 * src.stat().st_size
    assert result.data["psnr_db"] >= 40
    assert b"GPS" not in out.path.read_bytes()
    with Image.open(out.path) as im:
        assert im.size == (1200, 800) and not im.getexif()
    assert src.exists()  # the original is kept


def test_light_jpeg_left_alone(tmp_path: Path, workdir: Path) -> None:
    """An already small JPEG produces no output and says why."""
    src = mf.image(tmp_path, "light.jpg", size=(600, 400), quality=60)
    result = run_job("optimize", JobInput(src, workdir))
    assert result.data["optimized"] is False and result.outputs == ()
    assert not list(workdir.iterdir())


def test_sharp_graphics_not_equivalent(tmp_path: Path, workdir: Path) -> None:
    """Hard-edged graphics lose too much at quality 85 (PSNR under 40 dB): no copy is kept."""
    src = mf.image(tmp_path, "chart.jpg", size=(1200, 800), quality=100)
    result = run_job("optimize", JobInput(src, workdir))
    assert result.data["optimized"] is False and "PSNR" in result.data["reason"]
    assert not list(workdir.iterdir())


def test_png_recompressed_losslessly(tmp_path: Path, workdir: Path) -> None:
    """A PNG saved without compression gets a smaller, pixel-identical optimized.png."""
    from PIL import Image

    src = tmp_path / "raw.png"
    Image.new("RGB", (600, 400), (10, 200, 30)).save(src, compress_level=0)
    result = run_job("optimize", JobInput(src, workdir))
    assert result.data["optimized"] is True and result.data["psnr_db"] is None
    assert result.outputs[0].name == "optimized.png"
