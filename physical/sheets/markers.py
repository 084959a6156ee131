"""Fiducial markers: the ArUco dictionary, a marker's bit matrix, and detection in photos.

The PDF writer draws markers from `marker_bits` as vector squares; the align stage finds them with
`detect_markers`. Both use the dictionary named in `layout.ARUCO_DICT`.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .layout import ARUCO_DICT

MIN_SIDE_PX = 10.0  # smaller candidates are not looked at (cost grows with noise otherwise)
SMALL_PX = 32.0  # below this median side, markers are looked for again in a sharpened image ...
TINY_PX = 24.0  # ... and below this, also in a 2x upscaled one
UPSCALE_MAX_SIDE = 2000  # the upscaled pass only for photos up to this size (its cost grows 4x)


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
    p.minMarkerPerimeterRate = 0.008  # set per image by detect_markers: sides down to MIN_SIDE_PX
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


def _detect(grey: np.ndarray) -> dict[int, np.ndarray]:
    rate = round(min(0.03, 4 * MIN_SIDE_PX / max(grey.shape)), 4)  # perimeter / larger image side
    corners, ids, _ = _detector(rate).detectMarkers(grey)
    if ids is None:
        return {}
    out: dict[int, np.ndarray] = {}
    seen: set[int] = set()
    for c, i in zip(corners, ids.ravel().tolist()):
        if i in seen:
            out.pop(i, None)
            continue
        seen.add(i)
        out[i] = np.asarray(c, np.float64).reshape(4, 2)
    return out


def marker_side_px(corners: np.ndarray) -> float:
    """Mean side length of a marker in px."""
    return float(np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1).mean())


def _sharpen(grey: np.ndarray) -> np.ndarray:
    """Unsharp mask: restores the contrast of small, blurred marker bits."""
    return cv2.addWeighted(grey, 2.0, cv2.GaussianBlur(grey, (0, 0), 1.5), -1.0, 0)


def _median_side(found: dict[int, np.ndarray]) -> float:
    return float(np.median([marker_side_px(c) for c in found.values()])) if found else 0.0


def detect_markers(image: np.ndarray, extra_passes: bool = True) -> dict[int, np.ndarray]:
    """Markers in an 8-bit grey or RGB image: id -> 4x2 float64 corners (TL, TR, BR, BL) in px.

    Pixel centres are at integer coordinates (OpenCV's convention). An id seen more than once in
    the same pass is ambiguous and left out. With `extra_passes`, photos whose markers are small
    (median side < SMALL_PX) or not found at all are searched again in a sharpened copy, and small
    photos (<= UPSCALE_MAX_SIDE) with tiny markers (< TINY_PX) also in a 2x upscaled sharpened copy;
    on blurred 15-25 px markers this finds about 1.5x as many. Corners of the first pass that
    found a marker are kept. Without `extra_passes`: one pass, for speed (live view).
    """
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if grey.dtype != np.uint8:
        raise ValueError(f"detect_markers wants an 8-bit image, got {grey.dtype}")
    out = _detect(grey)
    if not extra_passes or (out and _median_side(out) >= SMALL_PX):
        return out
    sharp = _sharpen(grey)
    for i, c in _detect(sharp).items():
        out.setdefault(i, c)
    if max(grey.shape) <= UPSCALE_MAX_SIDE and (not out or _median_side(out) < TINY_PX):
        big = cv2.resize(sharp, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        for i, c in _detect(big).items():
            out.setdefault(i, (c + 0.5) / 2 - 0.5)  # back to this image's pixel grid
    return out
