"""What photos of the colour chart say about the rest of the print-and-camera channel.

Besides the colour model, blur and noise (:mod:`physical.calibrate.colour`), the chart photos
measure, per photo, then over the photos:

- the camera: the photo's size in pixels and the printed page's scale in it (pixels per
  millimetre), so the simulated photo has the user's frame and the user's cells in pixels;
  photos of different sizes or scales far apart (two cameras, two distances) stop the fit;
- the JPEG quality range, from the files' quantisation tables;
- exposure and white balance: the paper white's luminance and colour from photo to photo
  (auto exposure and auto white balance at work), as the channel's contrast range and
  white-balance gain;
- the light's unevenness over the chart (the flat field's gradient);
- the pose: the page's in-plane rotation away from square (a multiple of 90 deg is no rotation:
  align undoes it and the frame is turned instead) and its perspective tilt, in the channel's
  units (foreshortening across half the page's long side).

A channel range is at least as wide as the per-photo values' spread and never narrower than a
small floor: a handful of photos is a handful of draws of the channel.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from physical.log import say
from physical.channel.files import CalibrationError
from physical.channel.colour import srgb_decode

SCALE_SPREAD = 1.6  # photos whose px/mm differ more than this factor were not taken like one another
A4_LONG_MM = 297.0  # the chart's page; the channel's tilt is relative to half its long side


def pose(h: np.ndarray, centre_mm: float, size: tuple[int, int]) -> tuple[float, float, bool]:
    """(rotation away from square, deg; tilt; the page's long side along the photo's long side) of a
    chart mm -> photo px homography, the chart's grid centred at (centre_mm, centre_mm), in a photo
    of `size` (W, H)."""
    t = np.array([[1.0, 0, centre_mm], [0, 1.0, centre_mm], [0, 0, 1.0]])
    hc = h @ t
    hc = hc / hc[2, 2]
    # the chart's x axis in the photo, at the centre
    angle = math.degrees(math.atan2(hc[1, 0] - hc[2, 0] * hc[1, 2], hc[0, 0] - hc[2, 0] * hc[0, 2]))
    off = (angle + 45.0) % 90.0 - 45.0
    upright = abs(((angle + 90.0) % 180.0) - 90.0) < 45.0  # the chart's x axis along the photo's width
    tilt = float(np.hypot(hc[2, 0], hc[2, 1]) * A4_LONG_MM / 2)
    # the chart's page is portrait (its long side is its y axis): along the photo's long side when
    # upright in a portrait photo or turned in a landscape one
    return abs(off), tilt, upright != (size[0] > size[1])


def measured_channel(photos, centre_mm: float, jpeg_qualities: Optional[dict], light_gradient: float,
                     log=say) -> dict:
    """The channel section of a colour.json from the used chart photos (ChartPhoto with homography,
    white, px_per_mm, size) and the largest light gradient of their flat fields; CalibrationError if
    the photos were not taken with one camera alike."""
    sizes = sorted({tuple(sorted(p.size)) for p in photos})
    if len(sizes) > 1:
        names = ", ".join(f"{p.name} {p.size[0]}x{p.size[1]}" for p in photos[:4])
        raise CalibrationError(f"the chart photos have different sizes ({names}): photos from two cameras "
                               "(or resized ones) do not make one calibration; use the photos of the camera "
                               "that photographs the sheets")
    ppm = np.array([p.px_per_mm for p in photos])
    if ppm.max() > SCALE_SPREAD * ppm.min():
        lo, hi = photos[int(ppm.argmin())], photos[int(ppm.argmax())]
        raise CalibrationError(f"the chart is {lo.px_per_mm:.1f} px/mm in {lo.name} but {hi.px_per_mm:.1f} px/mm in "
                               f"{hi.name}: photograph the chart from one distance, the one you photograph the "
                               "sheets from, and calibrate again")
    poses = [pose(p.homography, centre_mm, p.size) for p in photos]
    rot = max(r for r, _, _ in poses)
    tilt = max(t for _, t, _ in poses)
    along = sum(u for _, _, u in poses) * 2 >= len(poses)
    out = {
        "image_size": [int(v) for v in photos[0].size],
        "page_along_long_side": bool(along),
        "px_per_mm": _range_of(ppm, 0.03),
        "rotation_deg": round(max(1.0, 1.1 * rot), 3),
        "tilt": round(min(0.5, max(0.01, 1.1 * tilt)), 4),
    }
    whites = [srgb_decode(torch.as_tensor(np.median(p.white, 0))).numpy()
              for p in photos if p.white is not None and len(p.white)]
    if whites:
        w = np.array(whites)
        lum = w @ np.array([0.2126, 0.7152, 0.0722])
        # exposure: the paper white's luminance about the median, in the encoded values the
        # channel's contrast scales (an encoded value moves by about 1/2.2 of a linear gain)
        rel = lum / np.median(lum)
        s = float(max(np.abs(rel - 1).max() / 2.2, 0.01))
        out["contrast"] = [round(1 - s, 4), round(1 + s, 4)]
        tint = w / lum[:, None]
        tint = tint / np.median(tint, 0)
        out["white_balance"] = round(float(min(0.5, max(np.abs(tint - 1).max() / 2.2, 0.01))), 4)
    out["light_gradient"] = round(float(min(0.95, max(light_gradient, 0.0))), 4)
    q = [v for n, v in (jpeg_qualities or {}).items() if any(p.name == n for p in photos)]
    if q:
        out["jpeg_quality"] = [float(min(q)), float(max(q))]
    else:
        log("calibrate colour: the photos are not JPEG files (or were read from a stream): the channel's "
            "JPEG quality stays the preset's")
    return out


def _range_of(v: np.ndarray, floor: float) -> list[float]:
    """[min, max] of per-photo values, at least +- floor (relative) around their middle."""
    a, b = float(v.min()), float(v.max())
    mid = (a + b) / 2
    return [round(min(a, mid * (1 - floor)), 4), round(max(b, mid * (1 + floor)), 4)]
