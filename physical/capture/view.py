"""What a frame shows of a printed run: its sheets, their markers, outline and sharpness (guided
capture and live mode), and a frame aligned as the align stage aligns a photo."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from physical.align import align_photo, reference_images
from physical import runfiles
from physical.rundir import RunDir
from physical.sheets.layout import Layout
from physical.sheets.markers import Marker, detect_all, marker_side_px, refine

PREBLUR_SIGMA = 0.8  # the Gaussian before the Laplacian of the sheet sharpness



@dataclass
class PrintedRun:
    """A run's printed sheets (print/layout.json): layout, run tag, cells."""

    root: Path
    layout: Layout
    tag: tuple[int, int]
    n_sheets: int
    cells: dict[tuple[int, int], dict]
    sha: str

    @classmethod
    def load(cls, run: RunDir) -> "PrintedRun":
        p = runfiles.load_layout(run)
        return cls(run.root, p.layout, p.tag, p.n_sheets, p.cells, p.sha)

    @functools.cached_property
    def references(self) -> dict[tuple[int, int], np.ndarray]:
        """(sheet, slot) -> the grey digital image a crop is measured against, as the align stage
        takes it (`align.reference_images`)."""
        return reference_images(self.root, self.cells)

    @property
    def images_px(self) -> dict[tuple[int, int], tuple[int, int]]:
        return {k: (c["width_px"], c["height_px"]) for k, c in self.cells.items()}

    def slots(self, sheet: int) -> list[int]:
        return sorted(s for (sh, s) in self.cells if sh == sheet)

    def page_corners(self) -> np.ndarray:
        w, h = self.layout.page_w, self.layout.page_h
        return np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)


@dataclass
class SheetView:
    """One sheet of this run as one frame shows it."""

    sheet: int
    found: dict[int, np.ndarray]  # lattice point -> 4x2 corners (px), consistent with the sheet fit
    tags: int  # run tag markers seen at their place, matching this run
    homography: Optional[np.ndarray]  # sheet mm -> frame px
    expected: int
    outline: Optional[np.ndarray] = None  # the page's 4 corners in the frame (px)
    sharpness: float = 0.0
    motion: Optional[float] = None  # largest corner motion since the previous frame, in marker sides

    @property
    def n_found(self) -> int:
        return len(self.found) + self.tags

    @property
    def marker_side(self) -> float:
        return float(np.median([marker_side_px(c) for c in self.found.values()])) if self.found else 0.0


def refined(frame: np.ndarray, markers: list[Marker]) -> list[Marker]:
    """Markers of a fast pass with their corners refined against their bit pattern, as the thorough
    pass leaves them (the align stage trusts refined markers; refining only the few found is cheaper
    than the thorough pass over the whole frame)."""
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return [m if m.score > 0 else Marker(m.id, *refine(grey, m.id, m.corners)) for m in markers]


def align_frame(frame: np.ndarray, printed: PrintedRun, align_cfg, detections: Optional[list[Marker]] = None):
    """align_photo on a frame as the align stage calls it (crops measured against the digital
    images, so `align.min_sharpness` and `min_match` mean the same), reusing the markers already
    found (refined first where they come from a fast pass)."""
    return align_photo(frame, printed.layout, printed.tag, printed.images_px, align_cfg,
                       references=printed.references,
                       detections=refined(frame, detections) if detections is not None else None)


def fit_sheet(layout: Layout, found: dict[int, np.ndarray]) -> tuple[Optional[np.ndarray], set[int]]:
    """RANSAC homography sheet mm -> frame px over a sheet's lattice markers, and the markers that
    agree with it (all four corners within half a marker side)."""
    points = sorted(found)
    if len(points) < 2:
        return None, set()
    src = np.concatenate([layout.point_corners(p) for p in points])
    dst = np.concatenate([found[p] for p in points])
    tol = max(2.0, 0.5 * float(np.median([marker_side_px(found[p]) for p in points])))
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, tol, maxIters=500)
    if h is None:
        return None, set()
    err = np.linalg.norm(cv2.perspectiveTransform(src.reshape(-1, 1, 2), h).reshape(-1, 2) - dst, axis=1)
    good = {p for p, e in zip(points, err.reshape(-1, 4).max(axis=1), strict=False) if e < tol}
    if len(good) >= 2 and len(good) < len(points):
        sel = sorted(good)
        h2, _ = cv2.findHomography(np.concatenate([layout.point_corners(p) for p in sel]),
                                   np.concatenate([found[p] for p in sel]), 0)
        h = h2 if h2 is not None else h
    return h, good


def sheets_in_view(markers: list[Marker], printed: PrintedRun) -> tuple[dict[int, SheetView], list[int]]:
    """This run's sheets in a frame (by sheet), and the sheets of other runs seen (ignored): a run
    tag marker at one of the sheet's tag places that is not this run's makes it another run's.
    A lattice id seen twice (two copies of a sheet) is ambiguous and not used."""
    layout = printed.layout
    lattice: dict[int, dict[int, np.ndarray]] = {}
    twice: set[int] = set()
    tags: list[tuple[int, np.ndarray]] = []
    for m in markers:
        dec = layout.decode_id(m.id)
        if dec is None:
            tags.append((m.id, m.corners))
        elif dec[0] < printed.n_sheets:
            if dec[1] in lattice.get(dec[0], {}):
                twice.add(m.id)
            lattice.setdefault(dec[0], {})[dec[1]] = m.corners
    for mid in twice:
        dec = layout.decode_id(mid)
        assert dec is not None, "twice holds lattice markers only"
        sheet, point = dec
        lattice[sheet].pop(point, None)
    places = layout.tag_positions()
    views, foreign = {}, []
    for sheet, found in lattice.items():
        h, good = fit_sheet(layout, found)
        if h is None or not good:
            continue
        ours = theirs = 0
        for centre, k in places:
            sq = cv2.perspectiveTransform(Layout.square(centre, layout.marker).reshape(-1, 1, 2), h).reshape(-1, 2)
            c, tol = sq.mean(axis=0), 0.5 * float(np.linalg.norm(sq[0] - sq[2]))
            near = [mid for mid, corners in tags if np.linalg.norm(corners.mean(axis=0) - c) < tol]
            if len(near) == 1:
                if near[0] == printed.tag[k]:
                    ours += 1
                else:
                    theirs += 1
        if theirs and not ours:
            foreign.append(sheet)
            continue
        v = SheetView(sheet, {p: found[p] for p in good}, ours, h, printed.layout.lattice_points + len(places))
        v.outline = cv2.perspectiveTransform(printed.page_corners().reshape(-1, 1, 2), h).reshape(-1, 2)
        views[sheet] = v
    return views, foreign


def sheet_sharpness(grey: np.ndarray, outline: Optional[np.ndarray]) -> float:
    """Variance of the Laplacian inside the sheet's outline (the whole frame without one), after a
    PREBLUR_SIGMA Gaussian."""
    h, w = grey.shape[:2]
    if outline is None:
        x0, y0, x1, y1 = 0, 0, w, h
    else:
        x0, y0 = np.floor(outline.min(axis=0)).astype(int)
        x1, y1 = np.ceil(outline.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0
    roi = cv2.GaussianBlur(grey[y0:y1, x0:x1], (0, 0), PREBLUR_SIGMA)
    lap = cv2.Laplacian(roi, cv2.CV_32F)
    mask: Optional[np.ndarray] = None
    if outline is not None:
        mask = np.zeros(roi.shape, np.uint8)
        cv2.fillConvexPoly(mask, np.round(outline - [x0, y0]).astype(np.int32), 255)
        mask = cv2.erode(mask, np.ones((5, 5), np.uint8))  # not the page's own edge against the desk
        if cv2.countNonZero(mask) < 64:
            return 0.0
    _, std = cv2.meanStdDev(lap, mask=mask)
    return float(std[0, 0] ** 2)


def find_markers(frame: np.ndarray, printed: PrintedRun, grey: Optional[np.ndarray] = None) -> list[Marker]:
    """One fast pass; the thorough one (finer levels, sharpened, refined corners) only when the fast
    one found part of a sheet of this run but not all of it."""
    grey = grey if grey is not None else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    markers = detect_all(grey, thorough=False)
    per_sheet: dict[int, int] = {}
    for m in markers:
        dec = printed.layout.decode_id(m.id)
        if dec is not None and dec[0] < printed.n_sheets:
            per_sheet[dec[0]] = per_sheet.get(dec[0], 0) + 1
    if any(n < printed.layout.lattice_points for n in per_sheet.values()):
        markers = detect_all(grey, thorough=True)
    return markers
