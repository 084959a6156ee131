"""patch.pdf as printed: the patch at its stated side, a scale bar and cut marks, measured on the
pixels of the rasterized page (pypdfium2, 300 dpi)."""
from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium
import pytest

from physical.rundir import write_image
from physical.sheets.patch import CUT_GAP_MM, CUT_LEN_MM, find_patch, write_patch_pdf

DPI = 300
PX = DPI / 25.4  # pixels per millimetre


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("patch")
    rng = np.random.default_rng(3)
    write_image(folder / "patch.png", rng.integers(40, 200, (48, 48, 3), dtype=np.uint8))  # no white, no black
    geo = write_patch_pdf(folder / "patch.pdf", folder / "patch.png", 60.0, "a test patch")
    doc = pdfium.PdfDocument(str(folder / "patch.pdf"))
    rgb = doc[0].render(scale=DPI / 72).to_numpy()[..., 2::-1].copy()
    text = doc[0].get_textpage().get_text_range()
    return rgb, geo, text


def px(v_mm: float) -> int:
    return int(round(v_mm * PX))


def test_the_page_states_the_patch_size_and_the_patch_measures_it(page):
    rgb, geo, text = page
    assert "the patch is 60 mm a side" in text and "scale bar: must measure 50 mm" in text
    x0, y0, side = geo["patch"]
    mid_row = rgb[px(y0 + side / 2)].astype(int)
    inked = np.flatnonzero(np.abs(mid_row - 255).sum(1) > 60)  # the patch's pixels, not paper
    inked = inked[(inked > px(x0 - 2)) & (inked < px(x0 + side + 2))]
    assert abs((inked[-1] - inked[0] + 1) / PX - 60.0) < 0.3
    assert abs(inked[0] / PX - x0) < 0.3
    corners = find_patch(rgb, 60.0)  # the markers are still found with the cut marks beside them
    assert corners is not None and abs(np.linalg.norm(corners[1] - corners[0]) / PX - 60.0) < 0.5


def test_the_scale_bar_measures_its_stated_length(page):
    rgb, geo, _ = page
    bx, by, length = geo["scale_bar"]
    dark = rgb.mean(2) < 128
    rows = dark[px(by - 1.0): px(by + 0.5), px(bx - 3): px(bx + length + 3)]
    longest = max(_longest_run(r) for r in rows)
    assert abs(longest / PX - length) < 0.5, longest / PX


def _longest_run(row: np.ndarray) -> int:
    best = run = 0
    for v in row:
        run = run + 1 if v else 0
        best = max(best, run)
    return best


def test_cut_marks_continue_the_patch_edges_outside_its_corners(page):
    rgb, geo, _ = page
    dark = rgb.mean(2) < 128
    x0, y0, side = geo["patch"]
    assert len(geo["cut_marks"]) == 8
    for (ax, ay), (bx, by) in geo["cut_marks"]:
        horizontal = ay == by
        # along the mark: ink over its whole length
        t = np.linspace(0.1, 0.9, 9)
        xs, ys = ax + t * (bx - ax), ay + t * (by - ay)
        points = list(zip(xs, ys, strict=True))
        assert all(dark[px(y) - k, px(x)] or dark[px(y) + k, px(x)] for x, y in points for k in (0, 1)), (ax, ay)
        # 1 mm to either side of the mark: paper
        dx, dy = (0.0, 1.0) if horizontal else (1.0, 0.0)
        assert not any(dark[px(y + s * dy), px(x + s * dx)] for x, y in points for s in (-1, 1))
        # the mark lies on the line of the patch's edge as printed (measured on the pixels)
        lo, hi = (min(ax, bx), max(ax, bx)) if horizontal else (min(ay, by), max(ay, by))
        if horizontal:
            band = dark[px(ay) - 6: px(ay) + 7, px(lo + 1): px(hi - 1)]
            centre = px(ay) - 6 + np.flatnonzero(band.any(1)).mean()
            edges = _patch_edges(rgb, px(x0 + side / 2), axis=0)
        else:
            band = dark[px(lo + 1): px(hi - 1), px(ax) - 6: px(ax) + 7]
            centre = px(ax) - 6 + np.flatnonzero(band.any(0)).mean()
            edges = _patch_edges(rgb, px(y0 + side / 2), axis=1)
        assert min(abs(centre - e) for e in edges) / PX < 0.25
        # the mark is CUT_LEN_MM long and leaves paper between it and the patch's corner
        ink = np.flatnonzero(dark[px(ay) - 3: px(ay) + 4].any(0)) if horizontal else \
            np.flatnonzero(dark[:, px(ax) - 3: px(ax) + 4].any(1))
        near = ink[(ink > px(lo - CUT_GAP_MM + 0.3)) & (ink < px(hi + CUT_GAP_MM - 0.3))]
        assert abs((near[-1] - near[0] + 1) / PX - CUT_LEN_MM) < 0.4


def _patch_edges(rgb: np.ndarray, at: int, axis: int) -> tuple[float, float]:
    """The first and last inked pixel of the patch along a column (axis 0) or row (axis 1) through it,
    as edge positions (pixel boundaries)."""
    line = rgb[:, at] if axis == 0 else rgb[at]
    inked = np.flatnonzero(np.abs(line.astype(int) - 255).sum(1) > 60)
    mid = len(line) // 2
    run = inked[np.abs(inked - mid) < len(line) // 4]
    return run[0] - 0.5, run[-1] + 0.5


