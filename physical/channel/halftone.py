"""A laser printer's halftone: every ink printed as clustered dots on a screen, not as a continuous tone.

An office colour laser cannot lay down half a toner: it prints each of cyan, magenta and yellow as
dots on a regular screen (100-200 lines per inch, rotated to the classic angles C 15, M 75, Y 0 deg
so that the screens do not beat visibly), the dot's area following the ink's coverage. At the
cell's print size (45 mm for a 224 px image: 126 pixels per inch) one dot spans about one image
pixel, so fine image detail is redrawn as dot shapes: an error that follows the image and that no
blur or added noise reproduces. A flat patch shows only the screen's texture (what
calibrate/texture.py measures); an image shows both.

:func:`halftone` screens an sRGB page raster at the printer's resolution. It keeps the tone: the
area average of the dots over a screen period equals the input (the printer's tone and colour are
the colour model's, fitted on photos of printed patches that were halftoned as well), so the page
averaged to the photo's resolution differs from the continuous one only in its texture and detail
(the screen, :func:`through` carries it through the printer stage). Each of R, G, B is screened as the coverage of its
complementary ink (C, M, Y), with no black
separation (a grey's three screens at three angles, as in a CMY print).
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch

SLOPE_STEP = 0.05  # through(): the step of the printer's directional derivative (a fraction of the screen)
ANGLES = (15.0, 75.0, 0.0)  # the C, M, Y screens (degrees), the printing trade's classic angles
STRIP = 512  # rows screened at a time (a 600-dpi A4 page is 7016 rows)


def _spot(rows: tuple[int, int], cols: tuple[int, int], dpi: float, lpi: float, angle_deg: float) -> np.ndarray:
    """The cosine spot function on the raster's pixels (2 at a dot's centre), with a tie-breaker 1e-6
    in size: at a rational angle and period (0 deg, 4 px) many pixels share a value, and the printer's
    threshold matrix gives each of them its own rank."""
    period = dpi / lpi
    t = math.radians(angle_deg)
    yy, xx = np.mgrid[rows[0]:rows[1], cols[0]:cols[1]].astype(np.float64)
    u = (xx * math.cos(t) + yy * math.sin(t)) / period
    v = (yy * math.cos(t) - xx * math.sin(t)) / period
    tie = (xx * 0.7548776662466927 + yy * 0.5698402909980532) % 1.0  # a low-discrepancy order
    return np.cos(2 * np.pi * u) + np.cos(2 * np.pi * v) + 1e-6 * tie


@functools.lru_cache(maxsize=8)
def _ranks(dpi: float, lpi: float, angle_deg: float) -> np.ndarray:
    """The spot values of a large patch of the same raster, sorted: a pixel's threshold is the
    fraction of the screen whose value is higher (dots grow from their centres)."""
    return np.sort(_spot((0, 512), (0, 512), dpi, lpi, angle_deg).ravel())


def screen(rows: tuple[int, int], width: int, dpi: float, lpi: float, angle_deg: float) -> np.ndarray:
    """Thresholds in [0, 1) of a clustered-dot screen at `lpi` lines per inch and `angle_deg`, for
    raster rows ``rows[0] .. rows[1]`` of a `width`-pixel page at `dpi`: an ink of coverage c is
    printed where c > threshold, which inks the fraction c of every period."""
    table = _ranks(float(dpi), float(lpi), float(angle_deg))
    spot = _spot(rows, (0, width), dpi, lpi, angle_deg)
    return (1.0 - np.searchsorted(table, spot) / table.size).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _page_screens(h: int, w: int, dpi: float, lpi: float) -> np.ndarray:
    """H x W x 3 uint8: floor(255 x threshold) of the three screens for a whole page (kept for the
    next page of the same size: every page of a sheets PDF is). For a uint8 input value v the ink
    prints where 255 - v > it, exactly where its coverage exceeds the threshold."""
    out = np.empty((h, w, 3), np.uint8)
    for y0 in range(0, h, STRIP):
        y1 = min(h, y0 + STRIP)
        for c, angle in enumerate(ANGLES):
            out[y0:y1, :, c] = np.floor(255 * screen((y0, y1), w, dpi, lpi, angle))
    return out


def halftone(rgb: np.ndarray, dpi: float, lpi: float) -> np.ndarray:
    """H x W x 3 uint8 sRGB raster at `dpi` -> the same raster printed with `lpi` clustered-dot
    screens: every pixel of every channel 0 (ink) or 255 (paper)."""
    if dpi < 2 * lpi:
        raise ValueError(f"a {lpi:g}-lpi screen needs a raster of at least {2 * lpi:g} dpi, got {dpi:g}")
    thresholds = _page_screens(rgb.shape[0], rgb.shape[1], float(dpi), float(lpi))
    return np.where(255 - rgb > thresholds, 0, 255).astype(np.uint8)


def through(printer: Callable[[torch.Tensor], torch.Tensor], page: torch.Tensor, screen: torch.Tensor) -> torch.Tensor:
    """The printer stage (a colour model, a tone curve) of a screened page: ``page`` the continuous
    page averaged to the raster, ``screen`` what the halftone changed in it (zero on average).

    The colour model was fitted on the mean colours of printed patches, so the continuous page goes
    through it and the screen's texture through its local slope (a directional derivative, central
    difference): applied to the screened raster itself, the model's curvature would shift every
    mid-tone by the screen's variance (9 levels of 255 lighter at a mid grey, 150 lpi at 317 dpi)."""
    step = SLOPE_STEP
    return printer(page) + (printer(page + step * screen) - printer(page - step * screen)) / (2 * step)
