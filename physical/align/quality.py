"""A crop's pixels and quality figures: the cell warped back to its digital pixels, its sharpness
and match against the digital image, the fraction of it inside the photo."""
from __future__ import annotations

import cv2
import numpy as np

from physical.sheets.markers import project

INSIDE_GRID = 16  # inside = fraction of a INSIDE_GRID x INSIDE_GRID grid of cell points in the photo
SHARPNESS_SIGMA = 1.0  # gaussian before the Laplacian of the sharpness figure (tames pixel noise)


def grey_f32(img: np.ndarray) -> np.ndarray:
    return (cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img).astype(np.float32)


def _bands(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Band-pass (difference of gaussians, sigma 0.7 and 1.4 px) and zero-mean low-pass (sigma 4)."""
    low = cv2.GaussianBlur(x, (0, 0), 4.0)
    return cv2.GaussianBlur(x, (0, 0), 0.7) - cv2.GaussianBlur(x, (0, 0), 1.4), low - low.mean()


def compare(crop: np.ndarray, reference: np.ndarray | None) -> tuple[float | None, float | None]:
    """(sharpness, match) of a crop against its digital reference (the item's *clean* image, for
    both cells of a pair, so the adversarial perturbation, lost or not, counts for neither).

    sharpness: how much of the reference's fine detail the crop keeps, 1 = as sharp as the digital
    image: the gain of the crop's band-pass against the reference's, divided by the same gain at
    low frequencies (which takes out the print's and the camera's contrast). Noise does not
    correlate with the reference, so it does not pass for detail (the variance of the Laplacian
    counts it as sharpness); blur and misalignment lower it. None when the reference has no detail.
    match: correlation of the two low-passes: 0.9-1 when the crop shows the reference's image (0.87
    or more in the tests, lighting gradients of +-30 % included), about 0 for another image, lower
    when part of it is covered (a fifth of the cell: about 0.55) or lost in glare. None when the
    reference has next to no coarse structure (a low-pass standard deviation under 8 grey levels:
    a flat image, or pixel noise), where neither figure means much.
    Without a reference: (variance of the Laplacian of the crop after a SHARPNESS_SIGMA gaussian, a
    figure for ranking photos of one cell only; None).
    """
    c = grey_f32(crop)
    if reference is None:
        return float(cv2.Laplacian(cv2.GaussianBlur(c, (0, 0), SHARPNESS_SIGMA), cv2.CV_32F).var()), None
    r = grey_f32(reference)
    if r.shape != c.shape:
        r = cv2.resize(r, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_AREA)
    (bc, lc), (br, lr) = _bands(c), _bands(r)
    hf_ref, lf_ref, lf_crop = float((br * br).sum()), float((lr * lr).sum()), float((lc * lc).sum())
    if lf_ref <= 64.0 * lr.size or lf_crop <= 1e-6 * lc.size:  # coarse structure of 8 grey levels or less
        return None, None
    match = float((lc * lr).sum()) / np.sqrt(lf_ref * lf_crop)
    lf = float((lc * lr).sum()) / lf_ref
    if hf_ref < 0.01 * br.size:
        return None, match
    return (max(0.0, float((bc * br).sum()) / hf_ref / lf) if lf > 0.05 else 0.0), match


def sharpness_of(crop: np.ndarray, reference: np.ndarray | None = None) -> float | None:
    """The sharpness figure of `compare`."""
    return compare(crop, reference)[0]


def warp_cell(photo: np.ndarray, h_cell: np.ndarray, rect: tuple[float, float, float, float],
               size: tuple[int, int]) -> np.ndarray:
    """The cell rectified to `size` (w, h) px; pixel (u, v) of the crop samples cell mm
    (x + (u + 0.5) w_mm / w, y + (v + 0.5) h_mm / h), as the PDF drew the digital pixels."""
    x, y, wm, hm = rect
    w, h = size
    a = np.array([[wm / w, 0, x + 0.5 * wm / w], [0, hm / h, y + 0.5 * hm / h], [0, 0, 1]])
    m = h_cell @ a  # crop px -> photo px
    corners = project(h_cell, np.array([[x, y], [x + wm, y], [x + wm, y + hm], [x, y + hm]]))
    sides = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    scale = max(sides[0] / w, sides[2] / w, sides[1] / h, sides[3] / h)  # photo px per crop px
    # work on the cell's bounding box only (blurring a whole 12 MP photo per cell is wasteful)
    pad = int(np.ceil(3 * scale)) + 4
    x0 = max(int(np.floor(corners[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(corners[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + pad + 1, photo.shape[1])
    y1 = min(int(np.ceil(corners[:, 1].max())) + pad + 1, photo.shape[0])
    if x1 <= x0 or y1 <= y0:
        return np.zeros((h, w, 3), np.uint8)
    roi = photo[y0:y1, x0:x1]
    m = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ m
    if scale > 1.5:  # anti-alias before decimating
        roi = cv2.GaussianBlur(roi, (0, 0), 0.45 * np.sqrt(scale * scale - 1))
        flags = cv2.INTER_LINEAR
    elif scale < 1.0:
        flags = cv2.INTER_CUBIC
    else:
        flags = cv2.INTER_LINEAR
    return cv2.warpPerspective(roi, m, (w, h), flags=flags | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def inside_fraction(h_cell: np.ndarray, rect: tuple[float, float, float, float], shape: tuple[int, ...]) -> float:
    x, y, w, hh = rect
    t = (np.arange(INSIDE_GRID) + 0.5) / INSIDE_GRID
    gx, gy = np.meshgrid(x + t * w, y + t * hh)
    p = project(h_cell, np.stack([gx.ravel(), gy.ravel()], axis=1))
    ok = (p[:, 0] >= -0.5) & (p[:, 0] <= shape[1] - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] <= shape[0] - 0.5)
    return float(ok.mean())


WASHED_OUT = 235  # grey level from which a crop's pixel counts as washed out by glare


def glare_or_cover(crop: np.ndarray, reference: np.ndarray | None) -> str:
    """What lies over a crop that does not show its image (a low match): "glare" when at least 5 %
    more of it is washed out than of its digital image, else "finger" (a finger or an object)."""
    white = float((grey_f32(crop) >= WASHED_OUT).mean())
    ref = 0.0 if reference is None else float((grey_f32(reference) >= WASHED_OUT).mean())
    return "glare" if white >= ref + 0.05 else "finger"
