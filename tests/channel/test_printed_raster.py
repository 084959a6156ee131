"""The simulator's page raster: a page printed at the printer's resolution and area-averaged to the
raster (`printed_pages`) has pdfium's size and pixel grid at that raster, keeps flat colours and
vector edges where they are, and keeps more of an embedded image's detail than pdfium resampling
the image straight to the coarse raster."""
from __future__ import annotations

import numpy as np
from PIL import Image
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from physical.sim.print_camera import printed_pages, rasterize_pdf

DPI = 100.0


def _pdf(path, detail: np.ndarray) -> None:
    c = canvas.Canvas(str(path), pagesize=(120 * mm, 90 * mm))
    c.setFillColorRGB(0.8, 0.2, 0.4)
    c.rect(5 * mm, 5 * mm, 40 * mm, 30 * mm, stroke=0, fill=1)  # a flat vector patch
    c.drawImage(ImageReader(Image.fromarray(detail)), 60 * mm, 20 * mm, 51.2 * mm, 51.2 * mm)
    c.save()


def _detail_kept(page: np.ndarray, digital: np.ndarray) -> float:
    """Correlation of the image's area in the raster with the digital image's high-pass."""
    k = DPI / 25.4
    h = page.shape[0]
    y0, y1 = round(h - (20 + 51.2) * k), round(h - 20 * k)
    x0, x1 = round(60 * k), round((60 + 51.2) * k)
    crop = page[y0:y1, x0:x1].mean(2)
    d = np.asarray(Image.fromarray(digital).convert("L").resize(crop.shape[::-1], Image.BOX), np.float64)
    hp = lambda a: a - np.asarray(Image.fromarray(a).resize((a.shape[1] // 4, a.shape[0] // 4), Image.BOX)
                                  .resize(a.shape[::-1], Image.BILINEAR), np.float64)
    a, b = hp(crop.astype(np.float32)), hp(d.astype(np.float32))
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_printed_page_grid_colours_and_detail(tmp_path):
    rng = np.random.default_rng(0)
    detail = (rng.random((64, 64, 3)) > 0.5).astype(np.uint8) * 255  # one image px over 3.1 raster px
    pdf = tmp_path / "page.pdf"
    _pdf(pdf, detail)
    direct = next(rasterize_pdf(pdf, DPI))
    printed = next(printed_pages(pdf, DPI)).page
    assert printed.shape == direct.shape and printed.dtype == np.uint8
    # the flat patch keeps its colour and its edges stay on the same pixels (exact geometry)
    k = DPI / 25.4
    h = printed.shape[0]
    inner = (slice(round(h - 33 * k), round(h - 7 * k)), slice(round(7 * k), round(43 * k)))
    assert np.abs(printed[inner].astype(int) - [204, 51, 102]).max() <= 2
    dark = lambda a: a[round(h - 20 * k), :round(60 * k), 0] < 230  # a row through the patch
    assert np.abs(np.nonzero(dark(printed))[0][[0, -1]] - np.nonzero(dark(direct))[0][[0, -1]]).max() <= 1
    # the embedded image's fine detail: the print keeps more of it than pdfium's direct raster
    kept_printed, kept_direct = _detail_kept(printed, detail), _detail_kept(direct, detail)
    assert kept_printed > kept_direct + 0.07, (kept_printed, kept_direct)  # 0.62 against 0.51
    # at the printer's own resolution nothing is averaged
    assert np.array_equal(next(printed_pages(pdf, 600.0)).page, next(rasterize_pdf(pdf, 600.0)))
