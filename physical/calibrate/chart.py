"""A photo of the printed colour chart, measured: the chart's homography from its markers, every
patch's mean colour (flat-fielded by the paper white between the patches), the edge spread of the
slanted edge square (blur) and the noise inside the patches. Steps 1-5 of
:mod:`physical.calibrate.colour`, which fits the colour model to what this module measures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import torch

from physical.sheets.markers import detect_markers, detector_parameters, project, sharpen
from physical.channel.colour import srgb_decode
from physical.channel.texture import patch_spectra
from physical.calibrate.targets import (
    CHART_ID0, GRID, aruco_dictionary, chart_markers, edge_square, grid_size_mm, patch_quad, white_points,
)

INSET = 0.2  # of a patch's side, each side: the inner 60 % is measured
MIN_MARKERS = 3
MIN_PATCH_PX = 5.0  # inner side in photo px
UNIFORM_FACTOR = 6.0  # a patch noisier than this x the photo's median patch is not uniform
NOISE_MARGIN_PX = 10.0  # noise is measured this far inside a patch at least (JPEG blocks ring at edges)
EDGE_BAND_PX = 12.0

@dataclass
class ChartPhoto:
    name: str
    size: tuple[int, int]
    reason: str = ""  # why the photo is not used; "" = used
    markers: int = 0
    homography: Optional[np.ndarray] = None  # chart mm -> photo px
    means: Optional[np.ndarray] = None  # (144, 3) camera values [0, 1], NaN where missing
    noise: Optional[np.ndarray] = None  # (144,) per-channel noise sigma from the grey image (NaN: not measured)
    noise_spectrum: Optional[np.ndarray] = None  # 3 x SIZE x SIZE opponent NPS (texture.py), None: no window fits
    spectrum_windows: int = 0
    texture_var: Optional[np.ndarray] = None  # (144, 3) each patch's opponent texture variance (NaN: none)
    missing: dict = field(default_factory=dict)  # slot -> reason
    white_xy: Optional[np.ndarray] = None  # (n, 2) chart mm
    white: Optional[np.ndarray] = None  # (n, 3) camera values
    edge_sigma_px: Optional[float] = None  # measured edge spread (before removing the inherent part)
    px_per_mm: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.reason


# ----------------------------------------------------------------------------------------------
# one photo


def _detect_chart_markers(grey: np.ndarray) -> dict[int, np.ndarray]:
    p = detector_parameters()
    p.minMarkerPerimeterRate = round(min(0.03, 40.0 / max(grey.shape)), 4)
    det = cv2.aruco.ArucoDetector(aruco_dictionary(), p)
    found: dict[int, np.ndarray] = {}
    for img in (grey, sharpen(grey)):
        corners, ids, _ = det.detectMarkers(img)
        if ids is not None:
            for c, i in zip(corners, ids.ravel().tolist(), strict=False):
                if CHART_ID0 <= i < CHART_ID0 + len(chart_markers()):
                    found.setdefault(int(i), np.asarray(c, np.float64).reshape(4, 2))
        if len(found) == len(chart_markers()):
            break
    return found


def _pixels(img: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (n, C) inside a convex quad (photo px) and their coordinates (n, 2)."""
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, img.shape[1]), min(y1, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, img.shape[2])), np.zeros((0, 2))
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((quad - [x0, y0]) * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    ys, xs = np.nonzero(mask)
    return img[y0:y1, x0:x1][ys, xs], np.stack([xs + x0, ys + y0], 1).astype(np.float64)


def _plane_std(vals: np.ndarray, xy: np.ndarray) -> float:
    """Median over channels of the std of the values about a fitted plane."""
    a = np.column_stack([xy - xy.mean(0), np.ones(len(xy))])
    coef, *_ = np.linalg.lstsq(a, vals, rcond=None)
    return float(np.median((vals - a @ coef).std(0)))


def _inner_box(quad: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): an axis-aligned box inside a nearly axis-aligned (or quarter-turned) quad."""
    xs, ys = np.sort(quad[:, 0]), np.sort(quad[:, 1])
    return int(np.ceil(xs[1])), int(np.ceil(ys[1])), int(np.floor(xs[2])), int(np.floor(ys[2]))


def _edge_sigma(grey: np.ndarray, h: np.ndarray) -> Optional[float]:
    """Median over the edge square's four edges of the fitted edge spread sigma (photo px)."""
    # deferred: scipy.optimize takes ~1 s to import; only the chart fit needs it
    from scipy.optimize import least_squares
    from scipy.special import erf  # deferred: scipy, with the line above

    sq = edge_square()
    centre = project(h, sq.mean(0, keepdims=True))[0]
    sigmas = []
    for i in range(4):
        a, b = sq[i], sq[(i + 1) % 4]
        p0, p1 = project(h, np.array([a + 0.2 * (b - a), a + 0.8 * (b - a)]))
        t = p1 - p0
        length = float(np.linalg.norm(t))
        if length < 10:
            continue
        t /= length
        n = np.array([-t[1], t[0]])
        if np.dot(n, p0 - centre) < 0:
            n = -n  # pointing out of the black square
        box = np.array([p0 - n * EDGE_BAND_PX, p1 - n * EDGE_BAND_PX, p1 + n * EDGE_BAND_PX, p0 + n * EDGE_BAND_PX])
        if (box.min(0) < 0).any() or box[:, 0].max() > grey.shape[1] - 1 or box[:, 1].max() > grey.shape[0] - 1:
            continue
        vals, xy = _pixels(grey[..., None], box)
        if len(vals) < 50:
            continue
        d = (xy - p0) @ n
        v = vals[:, 0].astype(np.float64) / 255.0
        lo, hi = np.percentile(v, 5), np.percentile(v, 95)
        if hi - lo < 0.15:
            continue  # no edge to speak of (overexposed, covered)

        def resid(p, d=d, v=v):
            return p[0] + (p[1] - p[0]) * 0.5 * (1 + erf((d - p[2]) / (math.sqrt(2) * p[3]))) - v

        r = least_squares(resid, [lo, hi, 0.0, 1.0], bounds=([-0.5, 0, -6, 0.05], [1.5, 1.5, 6, 10]))
        if r.success:
            sigmas.append(float(r.x[3]))
    return float(np.median(sigmas)) if sigmas else None


def measure_chart(image: np.ndarray, name: str = "photo") -> ChartPhoto:
    """Find the chart in one RGB uint8 photo and measure its patches, paper, edge and noise."""
    h_img, w_img = image.shape[:2]
    out = ChartPhoto(name, (w_img, h_img))
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h = _locate_chart(out, image, grey)
    if h is None:
        return out
    img = image.astype(np.float64) / 255.0
    means, spread, noise, boxes = _measure_patches(out, img, h)
    _drop_not_uniform(out, means, spread, noise)
    out.means, out.noise = means, noise
    _measure_texture(out, img, noise, boxes)
    _measure_white(out, img, h)
    out.edge_sigma_px = _edge_sigma(grey, h)
    return out


def _locate_chart(out: ChartPhoto, image: np.ndarray, grey: np.ndarray) -> Optional[np.ndarray]:
    """The chart's homography (chart mm -> photo px) from its markers, and the photo's scale;
    None with `out.reason` set where the chart is not found."""
    found = _detect_chart_markers(grey)
    out.markers = len(found)
    if len(found) < MIN_MARKERS:
        what = "a sheet of a run, not the colour chart" if len(detect_markers(image)) >= 4 else (
            "is it the colour chart? Is it sharp and well lit?")
        out.reason = (f"{len(found)} of the colour chart's {len(chart_markers())} markers found, at least "
                      f"{MIN_MARKERS} are needed ({what})")
        return None
    ids = sorted(found)
    src = np.concatenate([chart_markers()[i] for i in ids])
    dst = np.concatenate([found[i] for i in ids])
    side = float(np.median([np.linalg.norm(found[i][0] - found[i][2]) for i in ids]))
    h, mask = cv2.findHomography(src, dst, cv2.RANSAC, max(2.0, 0.1 * side))
    if h is None:
        out.reason = "the chart's markers do not fit one flat page"
        return None
    good = mask.ravel().reshape(-1, 4).all(1)
    if good.sum() < MIN_MARKERS:
        out.reason = f"only {int(good.sum())} of the chart's markers fit one flat page; is the page curled?"
        return None
    keep = np.repeat(good, 4)
    h, _ = cv2.findHomography(src[keep], dst[keep], 0)
    out.homography = h
    c = project(h, np.array([[grid_size_mm() / 2, grid_size_mm() / 2], [grid_size_mm() / 2 + 1, grid_size_mm() / 2],
                              [grid_size_mm() / 2, grid_size_mm() / 2 + 1]]))
    (ax, ay), (bx, by) = c[1] - c[0], c[2] - c[0]
    out.px_per_mm = float(math.sqrt(abs(ax * by - ay * bx)))
    return h


def _outside(quad: np.ndarray, w_img: int, h_img: int) -> bool:
    return bool((quad < 1).any() or (quad[:, 0] > w_img - 2).any() or (quad[:, 1] > h_img - 2).any())


def _measure_patches(out: ChartPhoto, img: np.ndarray, h: np.ndarray) -> tuple:
    """Per patch: its mean colour, its spread about a plane, its noise (in the grey image, away from
    its edges by one JPEG block: their ringing) and the box of its noise quad (the texture's windows)."""
    h_img, w_img = img.shape[:2]
    grey_f = img.mean(2)
    n = GRID * GRID
    means = np.full((n, 3), np.nan)
    spread = np.full(n, np.nan)
    noise = np.full(n, np.nan)
    boxes = {}  # slot -> the axis-aligned box inside its noise quad (the texture's windows)
    for slot in range(n):
        quad = project(h, patch_quad(slot, INSET))
        if _outside(quad, w_img, h_img):
            out.missing[slot] = "outside the photo"
            continue
        if min(np.linalg.norm(quad - np.roll(quad, 1, 0), axis=1)) < MIN_PATCH_PX:
            out.missing[slot] = "too small in the photo"
            continue
        vals, xy = _pixels(img, quad)
        if len(vals) < 9:
            out.missing[slot] = "too small in the photo"
            continue
        means[slot] = vals.mean(0)
        spread[slot] = _plane_std(vals, xy)
        full = min(np.linalg.norm(quad - np.roll(quad, 1, 0), axis=1)) / (1 - 2 * INSET)  # patch side, px
        inset = max(INSET, NOISE_MARGIN_PX / full)
        if inset < 0.4:
            g, gxy = _pixels(grey_f[..., None], project(h, patch_quad(slot, inset)))
            if len(g) >= 25:
                noise[slot] = _plane_std(g, gxy) * math.sqrt(3)
                boxes[slot] = _inner_box(project(h, patch_quad(slot, inset)))
    return means, spread, noise, boxes


def _drop_not_uniform(out: ChartPhoto, means: np.ndarray, spread: np.ndarray, noise: np.ndarray) -> None:
    """Patches far less uniform than the others (glare, shadow, a finger) are missing."""
    seen = ~np.isnan(spread)
    if seen.any():
        med = float(np.median(spread[seen]))
        for slot in np.nonzero(seen)[0]:
            if spread[slot] > max(UNIFORM_FACTOR * med, 0.03):
                out.missing[int(slot)] = f"not uniform (std {spread[slot]:.3f}: glare, shadow or something in front)"
                means[slot] = np.nan
                noise[slot] = np.nan


def _measure_texture(out: ChartPhoto, img: np.ndarray, noise: np.ndarray, boxes: dict) -> None:
    psd: np.ndarray | float = 0.0
    windows = 0
    out.texture_var = np.full((GRID * GRID, 3), np.nan)
    for slot, box in boxes.items():  # per patch: the texture's level depends on the colour (texture.py)
        if not np.isnan(noise[slot]):
            p_slot, k = patch_spectra(img, [box])
            if k:
                psd, windows = psd + p_slot, windows + k
                out.texture_var[slot] = p_slot.reshape(3, -1).mean(1) / k
    if windows:
        out.noise_spectrum, out.spectrum_windows = np.asarray(psd / windows), windows


def _measure_white(out: ChartPhoto, img: np.ndarray, h: np.ndarray) -> None:
    """The white paper at the crossings of the gaps between patches (the light's unevenness)."""
    h_img, w_img = img.shape[:2]
    side_mm = 1.0  # the gap crossings are 3 mm square: 1 mm keeps 1 mm clear of the patches
    samples, where = [], []
    for p in white_points():
        r = side_mm / 2
        quad = project(h, np.array([[p[0] - r, p[1] - r], [p[0] + r, p[1] - r], [p[0] + r, p[1] + r],
                                     [p[0] - r, p[1] + r]]))
        if _outside(quad, w_img, h_img):
            continue
        vals, _ = _pixels(img, quad)
        if len(vals):
            samples.append(np.median(vals, 0))
            where.append(p)
    out.white_xy = np.array(where).reshape(-1, 2)
    out.white = np.array(samples).reshape(-1, 3)


# ----------------------------------------------------------------------------------------------
# flat field and exposure


def _poly2(xy: np.ndarray) -> np.ndarray:
    x, y = (xy[:, 0] / grid_size_mm() - 0.5), (xy[:, 1] / grid_size_mm() - 0.5)
    return np.column_stack([np.ones_like(x), x, y, x * x, x * y, y * y])


def flat_field(photo: ChartPhoto) -> tuple[Optional[np.ndarray], float]:
    """Per-channel quadratic fit (6 x 3 coefficients) of the paper white in linear light, robust to
    a few contaminated samples; None with fewer than 12 samples. Also the light's unevenness over
    the grid: (max - min) / (max + min) of the fitted luminance (the channel's light_gradient)."""
    if photo.white is None or photo.white_xy is None or len(photo.white) < 12:
        return None, 0.0
    lin = srgb_decode(torch.as_tensor(photo.white)).numpy()
    a = _poly2(photo.white_xy)
    keep = np.ones(len(lin), bool)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(a[keep], lin[keep], rcond=None)
        r = np.abs(lin - a @ coef).max(1)
        mad = np.median(r[keep]) + 1e-6
        new = r < 4 * 1.4826 * mad + 0.005
        if new.sum() < 12 or (new == keep).all():
            break
        keep = new
    g = np.linspace(0, grid_size_mm(), 9)
    gx, gy = np.meshgrid(g, g)
    lum = (_poly2(np.stack([gx.ravel(), gy.ravel()], 1)) @ coef) @ np.array([0.2126, 0.7152, 0.0722])
    grad = float((lum.max() - lum.min()) / max(lum.max() + lum.min(), 1e-6))
    return coef, grad


def patch_centres() -> np.ndarray:
    return np.array([patch_quad(s).mean(0) for s in range(GRID * GRID)])


def normalised_patches(photos: list[ChartPhoto]) -> tuple[np.ndarray, dict]:
    """(photos, 144, 3) linear-light patch values with the light's unevenness divided out and every
    photo's exposure / white balance brought to the median photo's; and a report."""
    centres = patch_centres()
    out, whites, grads = [], [], []
    for p in photos:
        means = np.asarray(p.means)  # every photo used was measured
        lin = srgb_decode(torch.as_tensor(means)).numpy()
        lin[np.isnan(means)] = np.nan
        coef, grad = flat_field(p)
        if coef is not None:
            field = _poly2(centres) @ coef
            white = (_poly2(np.array([[grid_size_mm() / 2] * 2])) @ coef)[0]
            lin = lin * (white / np.clip(field, 1e-4, None))
        else:
            white = srgb_decode(torch.as_tensor(np.median(p.white, 0) if p.white is not None and len(p.white)
                                                else np.nanmax(means, 0))).numpy()
        out.append(lin)
        whites.append(white)
        grads.append(grad)
    white_all = np.array(whites)
    ref = np.median(white_all, 0)
    patches = np.array(out) * (ref / np.clip(white_all, 1e-4, None))[:, None, :]
    lum = white_all @ np.array([0.2126, 0.7152, 0.0722])
    report = {
        "paper_white_linear": np.round(ref, 5).tolist(),
        "exposure_spread": round(float((lum.max() - lum.min()) / max(np.median(lum), 1e-6)), 4),
        "light_gradient": [round(float(min(grads)), 4), round(float(max(grads)), 4)],
    }
    return patches, report


# ----------------------------------------------------------------------------------------------
# the model fit
