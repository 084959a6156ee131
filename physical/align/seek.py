"""Markers the pass over the whole photo missed: far, small, blurred and tilted sheets (issue 30).

`detect_all` stops at the coarsest level whose markers are large enough, so a second, farther sheet
in the same photo is never looked at; and its ArUco reads no marker whose bits are blurred into
each other, though it still outlines the marker's black square. Here the part of the photo outside
the sheets already found is searched again at full resolution (an upscaled copy where the markers
expected are tiny), with a second ArUco parameter set that keeps small, rounded, low-contrast quads;
each quad outlined but not read is read by correlation with the dictionary (`markers.read_soft`,
which checks its id against every other and refines it). Reading stops for a sheet once SEED
markers of it are read: `sheetfit.complete` finds the rest where the lattice puts them.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from physical.sheets.layout import TAG_BASE, Layout
from physical.sheets.markers import Marker, detector_parameters, dictionary, marker_side_px, project, read_soft, refine
from physical.align.sheetfit import fit, sheet_instances

SEED = 4  # lattice markers of one sheet read here before the lattice takes over
LEAST_PX = 11.0  # smallest marker side (px) looked for; below TINY the region is upscaled 2x
TINY_PX = 16.0
READS = 40  # most quads read by correlation per photo (each costs a few ms)
MARGIN = 0.03  # a quad read here is the dictionary's best match by this much (`read_soft`; tags' margin)
BORDER_CONTRAST = 0.25  # least (quiet zone - black border) / quiet zone of a quad worth reading


@lru_cache(maxsize=4)
def _detector(rate: float) -> cv2.aruco.ArucoDetector:
    p = detector_parameters()
    p.minMarkerPerimeterRate = rate
    p.adaptiveThreshWinSizeMin = 5
    p.adaptiveThreshWinSizeMax = 25
    p.adaptiveThreshWinSizeStep = 4
    p.adaptiveThreshConstant = 3  # low-contrast (far, hazy, blurred) borders
    p.polygonalApproxAccuracyRate = 0.08  # blurred corners are rounder still
    p.minCornerDistanceRate = 0.1
    p.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_NONE  # `refine` does it on the photo
    return cv2.aruco.ArucoDetector(dictionary(), p)


def quads(grey: np.ndarray, scale: float, least: float = LEAST_PX) -> tuple[list[tuple[int, np.ndarray]],
                                                                            list[np.ndarray]]:
    """ArUco's read markers and unread quads (sides from `least` px) in `grey` resized by `scale`,
    in `grey`'s px."""
    img = grey if scale == 1 else cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    rate = round(4 * least * scale / max(img.shape), 4)
    corners, ids, rejected = _detector(rate).detectMarkers(img)
    back = [np.asarray(c, np.float64).reshape(4, 2) for c in corners]
    back = [(c + 0.5) / scale - 0.5 for c in back]
    read = [] if ids is None else [(int(i), c) for c, i in zip(back, ids.ravel(), strict=True)]
    return read, [(np.asarray(r, np.float64).reshape(4, 2) + 0.5) / scale - 0.5 for r in rejected]


def border_contrast(grey: np.ndarray, quad: np.ndarray) -> float:
    """(quiet zone - black border) / quiet zone of a quad rectified to 9 x 9 bits (the marker's
    one-bit black border inside its one-bit white margin); 0 for a quad that is not one."""
    k = 4
    dst = np.array([[k, k], [8 * k, k], [8 * k, 8 * k], [k, 8 * k]], np.float32) - 0.5
    m = cv2.getPerspectiveTransform(np.asarray(quad, np.float32), dst)
    w = cv2.warpPerspective(grey, m, (9 * k, 9 * k), flags=cv2.INTER_LINEAR).astype(np.float32)
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[2:7, 2:7] = False
    quiet = np.ones((9, 9), bool)
    quiet[1:8, 1:8] = False
    bits = cv2.resize(w, (9, 9), interpolation=cv2.INTER_AREA)
    outside, border = float(np.median(bits[quiet])), float(np.median(bits[ring]))
    return (outside - border) / outside if outside > 1 else 0.0


def _outlines(layout: Layout, markers: list[Marker]) -> list[np.ndarray]:
    """The page outline (4 x 2 px) of every sheet instance its lattice markers make (two or more)."""
    by_sheet: dict[int, list[tuple[int, Marker]]] = {}
    for m in markers:
        dec = layout.decode_id(m.id)
        if dec is not None and dec[0] < layout.max_sheets:
            by_sheet.setdefault(dec[0], []).append((dec[1], m))
    out = []
    for dets in by_sheet.values():
        for h, found in sheet_instances(layout, dets):
            if len(found) >= 2:
                out.append(_page(layout, h))
    return out


def _page(layout: Layout, h: np.ndarray) -> np.ndarray:
    w, hh = layout.page_w, layout.page_h
    return project(h, [[0.0, 0.0], [w, 0.0], [w, hh], [0.0, hh]])


def _outside(grey: np.ndarray, pages: list[np.ndarray], pad: float) -> np.ndarray:
    """`grey` with the pages already found painted flat (their markers are read already)."""
    if not pages:
        return grey
    out = grey.copy()
    for q in pages:
        c = q.mean(axis=0)
        grown = c + (q - c) * (1 + pad / max(1.0, float(np.linalg.norm(q - c, axis=1).min())))
        cv2.fillConvexPoly(out, np.round(grown).astype(np.int32), 128)
    return out


def seek_markers(grey: np.ndarray, layout: Layout, markers: list[Marker]) -> list[Marker]:
    """Lattice and run tag markers outside the sheets that `markers` already make, read as the
    module docstring says; [] when there are none. The markers returned are refined (score > 0)."""
    pages = _outlines(layout, markers)
    sides = [marker_side_px(m.corners) for m in markers]
    pad = float(np.median(sides)) if sides else 0.0
    region = _outside(grey, pages, 2 * pad)
    read: list[Marker] = []
    for scale in (1.0, 2.0):
        if scale > 1 and region.size * scale * scale > 16e6:  # the whole 2x copy would cost too much
            break
        found, outlines = quads(region, scale)
        read += [m for m in (_refined(grey, i, c) for i, c in found if _wanted(layout, i)) if m is not None]
        outlines = [q for q in outlines if marker_side_px(q) >= LEAST_PX
                    and border_contrast(grey, q) >= BORDER_CONTRAST]
        outlines = [q for q in outlines if not any(np.linalg.norm(q.mean(axis=0) - m.corners.mean(axis=0)) <
                                             0.5 * marker_side_px(m.corners) for m in read)]
        read += _read_quads(grey, layout, outlines, pages)
        if _seeded(layout, read) or (read and float(np.median([marker_side_px(m.corners) for m in read])) >= TINY_PX):
            break
    return _confirmed(layout, markers, read)


def _confirmed(layout: Layout, markers: list[Marker], read: list[Marker]) -> list[Marker]:
    """The lattice markers of `read` that another marker of their sheet (read here or before) puts
    where the lattice says (a sheet instance of two or more), and the tag markers read with them;
    [] without any: a quad read alone may be another tool's marker that correlates by chance."""
    lattice: dict[int, list[tuple[int, Marker]]] = {}
    for m in markers + read:
        dec = layout.decode_id(m.id)
        if dec is not None and dec[0] < layout.max_sheets:
            lattice.setdefault(dec[0], []).append((dec[1], m))
    ok: set[int] = set()
    for dets in lattice.values():
        for _, found in sheet_instances(layout, dets):
            if len(found) >= 2:
                ok |= {id(m) for m in found.values()}
    kept = [m for m in read if id(m) in ok]
    return kept + [m for m in read if m.id >= TAG_BASE] if kept else []


def _wanted(layout: Layout, marker_id: int) -> bool:
    dec = layout.decode_id(marker_id)
    return marker_id >= TAG_BASE or (dec is not None and dec[0] < layout.max_sheets)


def _refined(grey: np.ndarray, marker_id: int, corners: np.ndarray) -> Marker | None:
    c, score = refine(grey, marker_id, corners)
    return Marker(marker_id, c, score) if score > 0 else None


def _seeded(layout: Layout, read: list[Marker]) -> bool:
    counts: dict[int, int] = {}
    for m in read:
        dec = layout.decode_id(m.id)
        if dec is not None:
            counts[dec[0]] = counts.get(dec[0], 0) + 1
    return any(v >= SEED for v in counts.values())


def _read_quads(grey: np.ndarray, layout: Layout, quads: list[np.ndarray], pages: list[np.ndarray]) -> list[Marker]:
    """Quads read by correlation, largest first; once SEED lattice markers of one sheet are read,
    the quads inside that sheet's page are left to `sheetfit.complete`."""
    quads = sorted(quads, key=lambda q: -marker_side_px(q))
    out: list[Marker] = []
    done: list[np.ndarray] = []  # pages seeded here
    reads = 0
    for q in quads:
        centre = q.mean(axis=0).astype(np.float32)
        if any(np.linalg.norm(centre - m.corners.mean(axis=0)) < 0.5 * marker_side_px(m.corners) for m in out):
            continue  # ArUco outlines a marker more than once
        if any(cv2.pointPolygonTest(p.astype(np.float32), (float(centre[0]), float(centre[1])), False) >= 0
               for p in done):
            continue
        if reads >= READS:
            break
        reads += 1
        m = read_soft(grey, q, lambda i: _wanted(layout, i), margin=MARGIN)
        if m is None:
            continue
        out.append(m)
        dec = layout.decode_id(m.id)
        if dec is None:
            continue
        same = [(p, x) for x in out for s, p in [layout.decode_id(x.id) or (-1, -1)] if s == dec[0]]
        if len(same) >= SEED:
            h = fit(layout, same)
            if h is not None:
                done.append(_page(layout, h))
    return out
