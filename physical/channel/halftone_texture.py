"""The halftone's own share of a measured noise texture.

A colour calibration measures the texture of the chart's flat patches (texture.py): the printer's
halftone screen seen by the camera, plus the camera's noise, demosaicing, denoise and codec. Where
the simulator prints its pages with a halftone (``channel.halftone_lpi``,
physical.channel.halftone), its photos already carry that screen's texture; drawing the whole
measured texture on top would count the screen twice. So :func:`without_halftone` prints every chart
colour as a flat tile the way the simulator prints a page (the screen at the printer's resolution,
averaged to the photo's pixels per millimetre the chart measured, the colour model with the screen
through its slope (transforms.halftone.through, as the simulator's channel), the measured blur, the codec's passband
where the chart's photos were JPEGs), measures the tiles as the chart's
patches were measured, and takes their texture off the measured one: pooled, and per patch colour
(nearest camera colour). What is left is what the camera adds; at least FLOOR of every bin and
every patch's variance is kept (a screen the photos did not resolve as simulated must not leave a
negative texture).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from physical.channel.halftone import halftone, through
from physical.transforms.ops import gaussian_blur
from physical.channel.colour import ColourModel
from physical.channel.chart import chart_colours
from physical.channel.texture import SIZE, patch_spectra, pre_codec

PRINTER_DPI = 600.0  # the simulator's printer (physical.sim.print_camera.PRINTER_DPI)
TILE = 3 * SIZE  # the measured part of a tile: 3 x 3 windows
MARGIN = SIZE // 2  # around it, so the blur sees no edge
FLOOR = 1e-3


def halftone_texture(cal, lpi: float) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The texture of the chart's colours printed with an `lpi` screen and photographed as the
    calibration `cal` measured (px/mm, blur, colour model): (3 x SIZE x SIZE) pooled opponent NPS,
    (P, 3) the tiles' camera colours and (P, 3) their opponent variances. None where the calibration
    has no pixels per millimetre (an old file)."""
    ppm = cal.channel.get("px_per_mm")
    if not ppm:
        return None
    dpi = float(min(PRINTER_DPI, max(100.0, round(sum(ppm) / 2 * 25.4))))  # as physical.sim.print_camera.auto_dpi
    k = max(1, math.ceil(PRINTER_DPI / dpi - 1e-9))
    side = TILE + 2 * MARGIN
    colours = chart_colours()
    fine = np.empty((len(colours), side * k, side * k, 3), np.uint8)
    fine[:] = colours[:, None, None, :]
    printed = np.stack([halftone(t, dpi * k, lpi) for t in fine]).astype(np.float32) / 255
    dots = printed.reshape(len(colours), side, k, side, k, 3).mean((2, 4))  # the printer's area average
    page = np.broadcast_to(colours[:, None, None, :].astype(np.float32) / 255, dots.shape)
    model = ColourModel.from_calibration(cal)
    with torch.no_grad():
        x, screen = (torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2) for a in (page, dots - page))
        x = through(lambda z: model(z.clamp(0, 1)), x, screen).clamp(0, 1)
        if cal.blur_sigma:
            x = gaussian_blur(x, sum(cal.blur_sigma) / 2)
        camera = model(torch.from_numpy(colours.astype(np.float32) / 255)).numpy()
    tiles = x.permute(0, 2, 3, 1).numpy().astype(np.float64)
    box = (MARGIN, MARGIN, MARGIN + TILE, MARGIN + TILE)
    # the chart's photos show the texture after the camera's codec (where they were JPEGs)
    passes = 1.0 / pre_codec(np.ones((3, SIZE, SIZE)), "jpeg_quality" in cal.channel)
    spectra = []
    for tile in tiles:
        p, n = patch_spectra(tile, [box])
        spectra.append(p / max(n, 1) * passes)
    stacked = np.stack(spectra)
    return stacked.mean(0), camera, stacked.reshape(len(colours), 3, -1).mean(2)


def without_halftone(cal, lpi: float) -> Optional[tuple[np.ndarray, Optional[np.ndarray]]]:
    """The calibration's noise spectrum and texture-by-colour rows with the `lpi` halftone's own
    texture taken off (see the module docstring); None where it cannot be computed."""
    got = halftone_texture(cal, lpi)
    if got is None or cal.noise_spectrum is None:
        return None
    psd_h, camera, var_h = got
    psd = np.maximum(cal.noise_spectrum - psd_h, FLOOR * cal.noise_spectrum)
    rows = cal.texture_by_colour
    if rows is None:
        return psd, None
    nearest = np.argmin(((rows[:, None, :3] - camera[None]) ** 2).sum(2), 1)
    rest = np.maximum(rows[:, 3:] - var_h[nearest], FLOOR * rows[:, 3:])
    return psd, np.column_stack([rows[:, :3], rest])
