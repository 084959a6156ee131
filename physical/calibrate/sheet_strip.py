"""Were the chart photos printed by the printer that prints the sheets? The sheets' colour strip says.

Every sheet carries a colour reference strip (a grey ramp, then R G B C M Y: `physical.sheets.pdf`).
In photos of printed sheets (`physical calibrate colour --sheets PHOTOS`) the strip's patches are
measured where the sheet's lattice markers put them, brought to the calibration's exposure (one gain
in linear light, set by the strip's white) and compared with what the fitted colour model predicts
for the same digital colours: a paper white of another tint, or greys and inks far from the model's
(in CIEDE2000), mean the chart was printed on another printer or paper, and a channel fitted to it
would predict another printer's trip.
"""
from __future__ import annotations

from typing import Iterable, Optional

import cv2
import numpy as np
import torch

from physical.align.sheetfit import sheet_instances
from physical.calibrate.colour import delta_e2000, predict
from physical.channel.colour import srgb_decode, srgb_encode
from physical.channel.files import CalibrationError, ColourCalibration
from physical.sheets.layout import Layout
from physical.sheets.markers import Marker, detect_all, project
from physical.sheets.pdf import GREY_STEPS, PRIMARIES

WHITE_DE = 6.0  # paper white (exposure matched) further than this from the calibration's: another paper
STRIP_DE = 8.0  # the strip's greys and inks, mean CIEDE2000 beyond this: another printer
LUMA = np.array([0.2126, 0.7152, 0.0722])


def strip_digital() -> np.ndarray:
    """The strip's digital colours in [0, 1]: the grey ramp, then the primaries and secondaries."""
    greys = [(round(255 * i / (GREY_STEPS - 1)),) * 3 for i in range(GREY_STEPS)]
    return np.array(greys + PRIMARIES, np.float64) / 255.0


def strip_colours(photo: np.ndarray, layout: Layout) -> Optional[np.ndarray]:
    """The strip's patches in a photo of a sheet (sRGB-encoded [0, 1] medians of their inner half,
    ordered as `strip_digital`), from the sheet with most lattice markers; None when no sheet shows."""
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    by_sheet: dict[int, list[tuple[int, Marker]]] = {}
    for m in detect_all(grey):
        dec = layout.decode_id(m.id)
        if dec is not None and dec[0] < layout.max_sheets:
            by_sheet.setdefault(dec[0], []).append((dec[1], m))
    if not by_sheet:
        return None
    fits = sheet_instances(layout, max(by_sheet.values(), key=len))
    if not fits or len(fits[0][1]) < 4:
        return None
    h = fits[0][0]
    x, y, w, ht = layout.strip_rect()
    pw = w / (GREY_STEPS + 1 + len(PRIMARIES))
    slots = list(range(GREY_STEPS)) + [GREY_STEPS + 1 + i for i in range(len(PRIMARIES))]
    u = np.linspace(0.25, 0.75, 7)
    out = []
    for s in slots:
        pts = np.array([(x + (s + a) * pw, y + b * ht) for a in u for b in u])
        px = np.rint(project(h, pts)).astype(int)
        if (px < 0).any() or (px[:, 0] >= photo.shape[1]).any() or (px[:, 1] >= photo.shape[0]).any():
            return None
        out.append(np.median(photo[px[:, 1], px[:, 0]].astype(np.float64), 0) / 255.0)
    return np.array(out)


def strip_distance(measured: np.ndarray, cal: ColourCalibration) -> tuple[float, float]:
    """(paper white's CIEDE2000, the strip's mean CIEDE2000) between a photo's strip and the
    calibration's prediction, the photo's exposure matched to the calibration's at the white."""
    want = predict(cal.curves, cal.matrix, cal.bias, strip_digital(), cal.residual)
    lin = srgb_decode(torch.as_tensor(measured)).numpy()
    gain = float(srgb_decode(torch.as_tensor(want[GREY_STEPS - 1])).numpy() @ LUMA) / max(
        float(lin[GREY_STEPS - 1] @ LUMA), 1e-6)
    got = srgb_encode(torch.as_tensor(np.clip(lin * gain, 0, 1))).numpy()
    de = delta_e2000(got, want)
    return float(de[GREY_STEPS - 1]), float(de.mean())


def check_sheets(frames: Iterable[tuple[str, np.ndarray]], cal: ColourCalibration, layout: Layout,
                 calibration_name: str, chart_source: str, log) -> list[str]:
    """CalibrationError when the sheets' strips say the chart was printed elsewhere; the lines to say."""
    seen = []
    for name, photo in frames:
        strip = strip_colours(photo, layout)
        if strip is None:
            log(f"calibrate colour: {name}: no sheet's colour strip found; not compared")
            continue
        seen.append((name, *strip_distance(strip, cal)))
    if not seen:
        raise CalibrationError("--sheets: no photo shows a sheet's colour strip (all its lattice markers around it "
                               "and the strip in the photo); photograph a printed sheet whole")
    white = float(np.median([w for _, w, _ in seen]))
    mean = float(np.median([m for _, _, m in seen]))
    names = ", ".join(n for n, _, _ in seen[:3]) + (" ..." if len(seen) > 3 else "")
    if white > WHITE_DE or mean > STRIP_DE:
        what = (f"paper white Delta-E 2000 {white:.1f} (> {WHITE_DE:g}: another paper)" if white > WHITE_DE
                else f"the colour strip's greys and inks Delta-E 2000 {mean:.1f} on average (> {STRIP_DE:g}: another "
                     "printer or ink)")
        raise CalibrationError(f"the chart photos in {chart_source} and the sheets in {names} were not printed alike: "
                               f"{what}; print the colour chart on the printer and paper of the sheets, photograph it "
                               f"and calibrate again ({calibration_name} not written)")
    return [f"sheets {names}: the colour strip agrees with the calibration (paper white Delta-E 2000 {white:.1f}, "
            f"greys and inks {mean:.1f} on average; limits {WHITE_DE:g} and {STRIP_DE:g})"]
