"""Fiducial markers: the ArUco dictionary, a marker's bit matrix, and detection in photos.

The PDF writer draws markers from `marker_bits` as vector squares; the align stage finds them with
`detect_all`. Both use the dictionary named in `layout.ARUCO_DICT`.

Detection runs coarse to fine, which keeps a 12-megapixel photo well under a second: OpenCV's
ArUco detector first looks at a copy of the photo about COARSE_SIDE px wide, and at finer levels
(down to the full resolution, then a sharpened and an upscaled copy) only while the markers it
finds there are small. Every marker found is then refined at full resolution by aligning its known
bit pattern to the photo (ECC, `cv2.findTransformECC`, a homography per marker, on the marker's
neighbourhood only): this uses all the marker's pixels, not just four corners, and keeps the
corners within about 0.3 px of the truth even under 2-3 px of blur, where corner detectors drift
by a pixel or more.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np
from numpy.typing import ArrayLike

from physical.sheets.layout import ARUCO_DICT

MIN_SIDE_PX = 10.0  # smaller candidates are not looked at (cost grows with noise otherwise)
SMALL_PX = 32.0  # below this median side, markers are looked for again in a sharpened image ...
TINY_PX = 24.0  # ... and below this, also in a 2x upscaled one
UPSCALE_MAX_SIDE = 2000  # the upscaled pass only for photos up to this size (its cost grows 4x)
COARSE_SIDE = 1400  # detection starts on a copy of the photo whose larger side is about this
GOOD_PX = 20.0  # markers at least this large (median) at a level's scale: no finer level is needed
TARGET_PX = 26.0  # else the next level makes them about this large
MIN_SCORE = 0.75  # least correlation of a refined marker with its bit pattern
SOFT_MIN = 0.85  # least correlation of a marker read by correlation (`read_soft`) with its id's pattern


class Marker(NamedTuple):
    id: int
    corners: np.ndarray  # 4x2 float64, TL TR BR BL in px of the full image (pixel centres at integers)
    score: float  # correlation of the refined marker with its bit pattern (>= MIN_SCORE; 0 = not refined)


@lru_cache(maxsize=1)
def dictionary() -> cv2.aruco.Dictionary:
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICT))


def marker_bits(marker_id: int) -> np.ndarray:
    """(n+2)x(n+2) bool matrix of a marker, black border included; True = black."""
    d = dictionary()
    if not 0 <= marker_id < d.bytesList.shape[0]:
        raise ValueError(f"marker id {marker_id} is outside {ARUCO_DICT}")
    side = d.markerSize + 2
    img = cv2.aruco.generateImageMarker(d, int(marker_id), side, borderBits=1)  # one pixel per bit
    return img < 128


def detector_parameters() -> cv2.aruco.DetectorParameters:
    """Parameters tuned for small (~15-40 px), slightly blurred markers in JPEG photos."""
    p = cv2.aruco.DetectorParameters()
    p.adaptiveThreshWinSizeMin = 3
    p.adaptiveThreshWinSizeMax = 33
    p.adaptiveThreshWinSizeStep = 10
    p.minMarkerPerimeterRate = 0.008  # set per image by _detect: sides down to MIN_SIDE_PX
    p.maxMarkerPerimeterRate = 4.0
    p.polygonalApproxAccuracyRate = 0.05  # blurred corners are rounded
    p.minCornerDistanceRate = 0.05
    p.minDistanceToBorder = 1
    p.perspectiveRemovePixelPerCell = 8
    p.perspectiveRemoveIgnoredMarginPerCell = 0.2
    p.errorCorrectionRate = 0.6
    p.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    p.cornerRefinementWinSize = 4
    p.relativeCornerRefinmentWinSize = 0.3
    p.cornerRefinementMaxIterations = 50
    p.cornerRefinementMinAccuracy = 0.01
    return p


@lru_cache(maxsize=8)
def _detector(min_perimeter_rate: float) -> cv2.aruco.ArucoDetector:
    p = detector_parameters()
    p.minMarkerPerimeterRate = min_perimeter_rate
    return cv2.aruco.ArucoDetector(dictionary(), p)


def _detect(grey: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """One pass of OpenCV's detector: (id, 4x2 corners) of every marker, in `grey`'s pixels."""
    rate = round(min(0.03, 4 * MIN_SIDE_PX / max(grey.shape)), 4)  # perimeter / larger image side
    corners, ids, _ = _detector(rate).detectMarkers(grey)
    if ids is None:
        return []
    return [(int(i), np.asarray(c, np.float64).reshape(4, 2)) for c, i in zip(corners, ids.ravel(), strict=False)]


def _candidates(grey: np.ndarray) -> tuple[list[tuple[int, np.ndarray]], list[np.ndarray]]:
    """`_detect`, and the 4x2 corners of the quads ArUco found but could not read (a blurred or
    noisy marker, mostly: its outline is found long after its bits stop being readable)."""
    rate = round(min(0.03, 4 * MIN_SIDE_PX / max(grey.shape)), 4)
    corners, ids, rejected = _detector(rate).detectMarkers(grey)
    found = [] if ids is None else [(int(i), np.asarray(c, np.float64).reshape(4, 2))
                                    for c, i in zip(corners, ids.ravel(), strict=False)]
    return found, [np.asarray(r, np.float64).reshape(4, 2) for r in rejected]


def marker_side_px(corners: np.ndarray) -> float:
    """Mean side length of a marker in px."""
    return float(np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1).mean())


def project(h: np.ndarray, pts: ArrayLike) -> np.ndarray:
    """Points (k x 2) through a 3 x 3 homography."""
    return cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(-1, 1, 2), h).reshape(-1, 2)


def sharpen(grey: np.ndarray) -> np.ndarray:
    """Unsharp mask: restores the contrast of small, blurred marker bits."""
    return cv2.addWeighted(grey, 2.0, cv2.GaussianBlur(grey, (0, 0), 1.5), -1.0, 0)


def _median_side(found: list[tuple[int, np.ndarray]]) -> float:
    return float(np.median([marker_side_px(c) for _, c in found])) if found else 0.0


def _add(found: list[tuple[int, np.ndarray]], new: list[tuple[int, np.ndarray]], scale: float) -> None:
    """Add markers detected in a copy scaled by 1/`scale`; one found before (same id, same place)
    takes the new corners when they come from the full resolution (a better start for `refine`)."""
    for i, c in new:
        c = (c + 0.5) * scale - 0.5  # back to the full image's pixel grid
        centre, side = c.mean(axis=0), marker_side_px(c)
        same = [k for k, (j, d) in enumerate(found) if j == i and np.linalg.norm(d.mean(axis=0) - centre) < 0.5 * side]
        if not same:
            found.append((i, c))
        elif scale < 1.5:  # full resolution: better start corners for the refinement
            found[same[0]] = (i, c)


def _levels(grey: np.ndarray, thorough: bool) -> list[tuple[int, np.ndarray]]:
    """Markers found coarse to fine (see the module docstring), in full-resolution px.

    The first level shrinks the photo by an integer factor to about COARSE_SIDE px; where the
    markers found there are small (median side < GOOD_PX), the next level is the factor that makes
    them about TARGET_PX, and so on down to the full resolution; where nothing is found, the full
    resolution next. At full resolution (`thorough` only), small markers are looked for again in a
    sharpened copy, and tiny ones in small photos also in a 2x upscaled one.
    """
    h, w = grey.shape
    f = max(1, int(np.ceil(max(w, h) / COARSE_SIDE)))
    found: list[tuple[int, np.ndarray]] = []
    while f > 1:
        # a whole number of pixels per coarse pixel: OpenCV's fast path, exact corner mapping
        small = cv2.resize(grey[: h // f * f, : w // f * f], (w // f, h // f), interpolation=cv2.INTER_AREA)
        new = _detect(small)
        _add(found, new, f)
        side = _median_side(new)
        if side >= GOOD_PX:
            return found
        f = min(f - 1, int(f * side / TARGET_PX)) if new else 1
    _add(found, _detect(grey), 1)
    if not thorough or (found and _median_side(found) >= SMALL_PX):
        return found
    sharp = sharpen(grey)
    _add(found, _detect(sharp), 1)
    if max(h, w) <= UPSCALE_MAX_SIDE and (not found or _median_side(found) < TINY_PX):
        big = cv2.resize(sharp, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        _add(found, _detect(big), 0.5)
    return found


@lru_cache(maxsize=4096)
def _template(marker_id: int, k: int) -> np.ndarray:
    """The marker with a one-bit white border, k px per bit, float32 in [0, 1]."""
    t = np.ones((9, 9), np.float32)
    t[1:8, 1:8] = np.where(marker_bits(marker_id), 0.0, 1.0)
    return cv2.resize(t, (9 * k, 9 * k), interpolation=cv2.INTER_NEAREST)


def refine(grey: np.ndarray, marker_id: int, corners: np.ndarray) -> tuple[np.ndarray, float]:
    """Corners refined by aligning the marker's bit pattern to the photo (ECC, homography), and the
    correlation reached; the corners as given and score 0 where ECC fails, ends below MIN_SCORE
    or moves a corner by more than 2 bits. ECC finds the marker from up to 1-1.5 bits away; where
    it locks onto a shifted pattern its correlation stays below about 0.65 (a right lock: 0.9-0.99)."""
    side = marker_side_px(corners)
    k = int(np.clip(round(side / 7), 3, 12))
    tpl = _template(marker_id, k)
    src = np.array([[k - 0.5, k - 0.5], [8 * k - 0.5, k - 0.5], [8 * k - 0.5, 8 * k - 0.5], [k - 0.5, 8 * k - 0.5]],
                   np.float32)
    pad = int(side / 7 * 1.5) + 4
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - pad, 0)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + pad + 1
    roi = grey[y0:y1, x0:x1].astype(np.float32)
    if min(roi.shape) < 8:
        return corners, 0.0
    h0 = cv2.getPerspectiveTransform(src, np.asarray(corners - [x0, y0], np.float32))
    try:
        # cv2's stubs want an array for inputMask; None (no mask) is what OpenCV documents
        score, h = cv2.findTransformECC(tpl, roi, h0.astype(np.float32), cv2.MOTION_HOMOGRAPHY,  # type: ignore[call-overload]
                                        (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4), None, 3)
    except cv2.error:  # did not converge
        return corners, 0.0
    out = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), h.astype(np.float64)).reshape(4, 2)
    out += [x0, y0]
    if (score < MIN_SCORE or not np.isfinite(out).all()
            or np.linalg.norm(out - corners, axis=1).max() > max(2.0, 2 * side / 7)):
        return corners, 0.0
    return out, float(score)


def detect_all(image: np.ndarray, thorough: bool = True) -> list[Marker]:
    """Every marker in an 8-bit grey or RGB image, refined (see the module docstring).

    An id may occur more than once (run tag markers do; so do lattice markers when two copies of a
    sheet are in one photo): telling them apart is the caller's job. Without `thorough`: no
    sharpened or upscaled pass and no refinement (ArUco's own corners), for speed (live view).
    """
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if grey.dtype != np.uint8:
        raise ValueError(f"detect_all wants an 8-bit image, got {grey.dtype}")
    found = _levels(grey, thorough)
    if not thorough:
        return [Marker(i, c, 0.0) for i, c in found]
    return [Marker(i, *refine(grey, i, c)) for i, c in found]


SOFT_PX = 4  # px per bit of the patches `read_soft` compares
SOFT_SIGMAS = (1.5, 2.5, 3.5)  # blurs (px at SOFT_PX per bit) the dictionary is compared at


@lru_cache(maxsize=1)
def _all_bits() -> np.ndarray:
    """(ids x 4 rotations, 81) every marker of the dictionary with a one-bit white border, in every
    rotation (`np.rot90(bits, r)`: its first corner is the marker's r-th counting back from
    top-left), 9 x 9 bits flattened, 1 = white."""
    n = dictionary().bytesList.shape[0]
    out = np.ones((n * 4, 9, 9), np.float32)
    for i in range(n):
        bits = marker_bits(i)
        for r in range(4):
            out[4 * i + r, 1:8, 1:8] = np.where(np.rot90(bits, r), 0.0, 1.0)
    return out.reshape(n * 4, 81)


@lru_cache(maxsize=len(SOFT_SIGMAS))
def _blurred_codes(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Every marker of `_all_bits` at SOFT_PX px per bit, blurred by `sigma` px, zero-mean and
    unit-norm, kept factored: (B, norms) with B (pixels, 81) the blurred image of each bit, so the
    codes are `_all_bits() @ B.T` less their means, divided by norms (a blur is linear: correlating
    a zero-mean patch w with every code is `_all_bits() @ (B.T @ w) / norms`, 81 numbers a code)."""
    side = 9 * SOFT_PX
    basis = np.empty((side * side, 81), np.float32)
    for b in range(81):
        x = np.zeros((9, 9), np.float32)
        x.flat[b] = 1.0
        big = cv2.resize(x, (side, side), interpolation=cv2.INTER_NEAREST)
        basis[:, b] = cv2.GaussianBlur(big, (0, 0), sigma).ravel()
    codes = _all_bits() @ basis.T
    codes -= codes.mean(axis=1, keepdims=True)
    return basis, np.linalg.norm(codes, axis=1).astype(np.float32)


def _soft_match(grey: np.ndarray, corners: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, float] | None:
    """Correlation of a quad (rectified with a one-bit border) with every marker of the dictionary
    in every rotation (index 4 id + rotation), at the blur that fits it best (or `sigma`); None
    for a flat quad. A matched filter: it uses every pixel, so it reads markers whose bits are
    too blurred for thresholding."""
    k = SOFT_PX
    dst = np.array([[k - 0.5, k - 0.5], [8 * k - 0.5, k - 0.5], [8 * k - 0.5, 8 * k - 0.5], [k - 0.5, 8 * k - 0.5]],
                   np.float32)
    m = cv2.getPerspectiveTransform(np.asarray(corners, np.float32), dst)
    w = cv2.warpPerspective(grey, m, (9 * k, 9 * k), flags=cv2.INTER_AREA).astype(np.float32).ravel()
    w -= w.mean()
    norm = float(np.linalg.norm(w))
    if norm < 1.0 * len(w) ** 0.5:
        return None
    w /= norm
    best = None
    for s in SOFT_SIGMAS if sigma is None else (sigma,):
        basis, norms = _blurred_codes(s)
        c = _all_bits() @ (basis.T @ w) / norms
        if best is None or c.max() > best[0].max():
            best = (c, s)
    return best


def soft_scores(grey: np.ndarray, corners: np.ndarray) -> np.ndarray | None:
    """Correlation of the quad `corners` with every marker of the dictionary in every rotation
    (index 4 id + rotation; rotation 0: the quad's first corner is the marker's top-left), at the
    blur that fits it best; None for a flat quad (`read_soft`'s matched filter)."""
    best = _soft_match(grey, corners)
    return None if best is None else best[0]


def read_soft(grey: np.ndarray, corners: np.ndarray, accept, margin: float = 0.01) -> Marker | None:
    """A marker whose bits ArUco could not read (too blurred, noisy or soft), read by correlation
    (`_soft_match`): the best matching ids are refined (`refine`) and matched again at the refined
    corners; one is accepted only when, there, it is the best of the whole dictionary by `margin`
    and at least SOFT_MIN, its refinement reached MIN_SCORE, and `accept(id)`."""
    first = _soft_match(grey, corners)
    if first is None:
        return None
    c, sigma = first
    order = np.argsort(c)[::-1]
    tried: set[int] = set()
    for k in order[:12]:
        i, r = divmod(int(k), 4)
        if i in tried or not accept(i):
            continue
        tried.add(i)
        if len(tried) > 2:
            break
        refined, score = refine(grey, i, np.roll(corners, r, axis=0))
        if score <= 0:
            continue
        again = _soft_match(grey, refined, sigma)
        if again is None:
            continue
        c2 = again[0]
        top = int(np.argmax(c2))
        other = float(np.max(np.where(np.arange(len(c2)) // 4 == i, -1.0, c2)))
        if top == 4 * i and c2[top] >= SOFT_MIN and c2[top] - other >= margin:
            return Marker(i, refined, score)
    return None


def find_marker(grey: np.ndarray, guess: np.ndarray, accept, margin: float = 0.01) -> Marker | None:
    """A marker looked for where it should be: `guess` (4x2 corners, px) predicted from markers
    around it. The neighbourhood is enlarged (markers to about 56 px), sharpened and decoded by the
    same ArUco detector, so the id is read, not assumed; where ArUco finds the marker's outline but
    cannot read its bits, they are read by correlation (`read_soft`); `accept(id)` says which ids
    count. The marker found nearest the guess (within half a side) is refined like every other.
    None where nothing acceptable is found (covered, out of the photo, too blurred to read).
    """
    side = marker_side_px(guess)
    pad = 0.8 * side + 4
    x0, y0 = np.maximum(np.floor(guess.min(axis=0) - pad).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(guess.max(axis=0) + pad).astype(int) + 1, grey.shape[::-1])
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    scale = float(np.clip(56.0 / side, 1.0, 4.0))
    roi = cv2.resize(grey[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    best = None
    quads = []
    for img in (roi, sharpen(roi)):
        found, rejected = _candidates(img)
        for i, c in found:
            c = (c + 0.5) / scale - 0.5 + [x0, y0]
            d = float(np.linalg.norm(c.mean(axis=0) - guess.mean(axis=0)))
            if accept(i) and d < 0.5 * side and (best is None or d < best[0]):
                best = (d, i, c)
        if best is not None:
            return Marker(best[1], *refine(grey, best[1], best[2]))
        quads += [(c + 0.5) / scale - 0.5 + [x0, y0] for c in rejected]
    near = [c for c in quads if np.linalg.norm(c.mean(axis=0) - guess.mean(axis=0)) < 0.5 * side
            and 0.7 < marker_side_px(c) / side < 1.4]
    near.sort(key=lambda c: np.linalg.norm(c.mean(axis=0) - guess.mean(axis=0)))
    for c in near[:2] + [guess]:  # the outlines ArUco found there, else the guess itself
        m = read_soft(grey, c, accept, margin)
        if m is not None:
            return m
    return None


def detect_markers(image: np.ndarray, extra_passes: bool = True) -> dict[int, np.ndarray]:
    """Markers in an 8-bit grey or RGB image: id -> 4x2 float64 corners (TL, TR, BR, BL) in px.

    Pixel centres are at integer coordinates (OpenCV's convention). An id seen more than once is
    ambiguous here and left out: run tag markers, printed 8 times a sheet, are found with
    `detect_all`, which keeps every one. Without `extra_passes`: `detect_all(thorough=False)`.
    """
    out: dict[int, np.ndarray] = {}
    seen: set[int] = set()
    for m in detect_all(image, thorough=extra_passes):
        if m.id in seen:
            out.pop(m.id, None)
            continue
        seen.add(m.id)
        out[m.id] = m.corners
    return out
