"""Why no sheet was found in a photo, in one line with the figure measured (issue 30).

Looked at only when a photo gives no sheet, so its cost does not count for the photos that do:
markers of another ArUco dictionary (another tool's), markers of this dictionary that belong to no
sheet of this layout, marker outlines too small or too blurred to read (their size and the spread
of their edges measured), or nothing that looks like a marker at all.
"""
from __future__ import annotations

import cv2
import numpy as np

from physical.sheets.layout import ARUCO_DICT, TAG_BASE, Layout
from physical.sheets.markers import Marker, marker_side_px
from physical.align.seek import BORDER_CONTRAST, LEAST_PX, border_contrast, quads

# dictionaries other tools print (a 5x5 dictionary's markers are in DICT_5X5_1000: not listed)
OTHER_DICTS = ("DICT_4X4_1000", "DICT_6X6_1000", "DICT_7X7_1000", "DICT_ARUCO_ORIGINAL", "DICT_APRILTAG_36h11")
SMALLEST_PX = 4.0  # outlines from this side (px) are counted when the markers are too small to read
CHECK_SIDE = 1600  # the other dictionaries are looked for on a copy about this wide


def why_no_sheet(grey: np.ndarray, layout: Layout, markers: list[Marker]) -> str:
    """One line: why `markers` (this dictionary's, already read in `grey`) make no sheet."""
    lattice_ids = [m.id for m in markers if m.id < TAG_BASE]
    tags = len(markers) - len(lattice_ids)
    if lattice_ids:
        return (f"no sheet markers found: {len(lattice_ids)} {ARUCO_DICT} marker(s) whose ids (e.g. "
                f"{sorted(set(lattice_ids))[:3]}) are of no sheet of this layout: another tool's markers or a "
                "sheet printed with other sheet settings")
    other = _other_dictionary(grey)
    if other:
        name, n = other
        return (f"no sheet markers found: {n} marker(s) of another dictionary ({name}); this tool prints "
                f"{ARUCO_DICT} markers: photograph the sheets printed by `physical print`")
    outlined = [q for q in quads(grey, 1.0, SMALLEST_PX)[1] if border_contrast(grey, q) >= BORDER_CONTRAST]
    tagline = f" ({tags} run tag marker(s) read)" if tags else ""
    if len(outlined) < 2:
        return ("no markers found: nothing in the photo has a marker's black square with a white margin"
                + tagline + "; photograph a printed sheet, whole and in focus")
    side = float(np.median([marker_side_px(q) for q in outlined]))
    if side < LEAST_PX:
        return (f"no sheet markers found: {len(outlined)} marker-like outlines of about {side:.0f} px a side, too "
                f"small to read (about {LEAST_PX:.0f} px needed){tagline}; move closer or zoom in")
    spread = float(np.median([_edge_spread(grey, q) for q in outlined[:40]]))
    return (f"no sheet markers found: {len(outlined)} marker-like outlines of about {side:.0f} px, too blurred "
            f"to read: their edges spread over about {spread:.1f} px (10-90 %), their bits are {side / 7:.1f} px"
            f"{tagline}; hold the camera still and let it focus on the sheet")


def _other_dictionary(grey: np.ndarray) -> tuple[str, int] | None:
    """(name, count) of the other dictionary with the most markers read in `grey`, if any."""
    f = max(1.0, max(grey.shape) / CHECK_SIDE)
    small = grey if f == 1 else cv2.resize(grey, None, fx=1 / f, fy=1 / f, interpolation=cv2.INTER_AREA)
    best = None
    for name in OTHER_DICTS:
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))
        _, ids, _ = cv2.aruco.ArucoDetector(d, cv2.aruco.DetectorParameters()).detectMarkers(small)
        n = 0 if ids is None else len(ids)
        if n and (best is None or n > best[1]):
            best = (name, n)
    return best


def _edge_spread(grey: np.ndarray, quad: np.ndarray) -> float:
    """The 10-90 % rise (px) of a quad's outer edge, from its white margin into its black border,
    measured on profiles across the middle of its four sides."""
    c = quad.mean(axis=0)
    bit = marker_side_px(quad) / 7
    widths = []
    for k in range(4):
        a, b = quad[k], quad[(k + 1) % 4]
        mid = (a + b) / 2
        normal = mid - c
        normal /= max(float(np.linalg.norm(normal)), 1e-6)
        t = np.linspace(1.5 * bit, -1.0 * bit, 41)  # from outside the margin into the border
        along = [(a + (b - a) * s) for s in (0.35, 0.5, 0.65)]
        prof = np.zeros(len(t), np.float32)
        for p in along:
            pts = (p + t[:, None] * normal).astype(np.float32)
            prof += cv2.remap(grey, pts[:, 0:1], pts[:, 1:2], cv2.INTER_LINEAR).ravel().astype(np.float32)
        prof /= len(along)
        hi, lo = float(prof[:5].mean()), float(prof.min())
        if hi - lo < 5:
            continue
        x = (prof - lo) / (hi - lo)
        step = abs(float(t[1] - t[0]))
        i90 = int(np.argmax(x < 0.9))
        i10 = int(np.argmax(x < 0.1))
        widths.append(max(i10 - i90, 1) * step)
    return float(np.median(widths)) if widths else float("nan")
