"""The adversarial patch alone, as a printable PDF: the patch at a chosen side in millimetres,
centred on an A4 page, with an ArUco marker at each of its four corners (ids PATCH_IDS, clockwise
from top left, each `marker_mm` a side, `gap_mm` clear of the patch) so that a photo of a scene with
the printed patch in it can be checked later: the markers give the patch's outline in the photo
(`find_patch`), and its printed size (a scale bar, and the caption) can be checked with a ruler.
Cut marks (thin lines continuing the patch's edges outside its corners, clear of the markers) show
where to cut the patch out to hold it next to an object (`physical scene`).
"""
from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from physical.rundir import write_bytes
from physical.sheets.layout import TAG_BASE
from physical.sheets.markers import detect_all
from physical.sheets.pdf import FONT, _Page, _scale_bar

PATCH_IDS = tuple(range(TAG_BASE - 4, TAG_BASE))  # the last lattice ids: sheets of small runs never use them
A4 = (210.0, 297.0)
CUT_GAP_MM, CUT_LEN_MM, CUT_LINE_MM = 1.5, 6.0, 0.25  # a mark starts this far from the corner; its length, width
SCALE_BAR_MM = 50.0


def patch_geometry(side_mm: float, marker_mm: float = 10.0, gap_mm: float = 3.0, page=A4) -> dict:
    """The patch's square (x, y, side; mm from the page's top-left) and the four markers' centres."""
    x0, y0 = (page[0] - side_mm) / 2, (page[1] - side_mm) / 2
    off = gap_mm + marker_mm / 2
    corners = [(x0 - off, y0 - off), (x0 + side_mm + off, y0 - off), (x0 + side_mm + off, y0 + side_mm + off),
               (x0 - off, y0 + side_mm + off)]
    return {"patch": (x0, y0, side_mm), "markers": dict(zip(PATCH_IDS, corners, strict=False)), "marker_mm": marker_mm,
            "cut_marks": cut_marks(x0, y0, side_mm), "scale_bar": (20.0, page[1] - 20.0, SCALE_BAR_MM)}


def cut_marks(x0: float, y0: float, side: float) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Eight segments (mm, page top-left origin): at each corner of the patch, its two edges continued
    outwards from CUT_GAP_MM to CUT_GAP_MM + CUT_LEN_MM beyond the corner."""
    a, b = CUT_GAP_MM, CUT_GAP_MM + CUT_LEN_MM
    out = []
    for cx, sx in ((x0, -1), (x0 + side, 1)):
        for cy, sy in ((y0, -1), (y0 + side, 1)):
            out.append(((cx + sx * a, cy), (cx + sx * b, cy)))  # the horizontal edge, continued sideways
            out.append(((cx, cy + sy * a), (cx, cy + sy * b)))  # the vertical edge, continued up or down
    return out


def write_patch_pdf(path: str | Path, png: str | Path, side_mm: float, title: str) -> dict:
    """Write the patch (a PNG, drawn at its native pixels at exactly `side_mm`) on one A4 page."""
    w, h = A4
    most = w - 2 * 30
    if side_mm > most:
        raise ValueError(f"a patch of {side_mm:g} mm with its markers does not fit on A4 (at most {most:g} mm)")
    geo = patch_geometry(side_mm)
    buf = io.BytesIO()
    cv = canvas.Canvas(buf, pagesize=(w * mm, h * mm), invariant=1)
    cv.setTitle(title)
    cv.setCreator("physical")
    page = _Page(cv, SimpleNamespace(page_h=h))  # type: ignore[arg-type]  # _Page reads only the page height
    x0, y0, s = geo["patch"]
    cv.drawImage(str(png), x0 * mm, (h - y0 - s) * mm, s * mm, s * mm)
    for mid, centre in geo["markers"].items():
        page.marker(mid, centre, geo["marker_mm"])
    cv.setStrokeColorRGB(0, 0, 0)
    cv.setLineWidth(CUT_LINE_MM * mm)
    for (ax, ay), (bx, by) in geo["cut_marks"]:
        cv.line(ax * mm, (h - ay) * mm, bx * mm, (h - by) * mm)
    page.text(w / 2, 20, title, 11, font=FONT, align="centre")
    page.text(w / 2, 26, f"print at 100 % / actual size: the patch is {side_mm:g} mm a side", 8, align="centre")
    page.text(w / 2, 30, "cut along the marks at the patch's corners (the markers stay on the page)", 7,
              align="centre")
    _scale_bar(page, *geo["scale_bar"])
    cv.showPage()
    cv.save()
    write_bytes(path, buf.getvalue())
    return geo


def find_patch(photo_rgb: np.ndarray, side_mm: float) -> np.ndarray | None:
    """The printed patch's four corners (TL TR BR BL, photo pixels) from its four markers (the
    homography from the page's millimetres), or None when one of them is not found."""
    found = {m.id: m.corners.mean(0) for m in detect_all(photo_rgb) if m.id in PATCH_IDS}
    if len(found) < 4:
        return None
    geo = patch_geometry(side_mm)
    page = np.array([geo["markers"][i] for i in PATCH_IDS], np.float32)
    photo = np.array([found[i] for i in PATCH_IDS], np.float32)
    hom = cv2.getPerspectiveTransform(page, photo)
    x0, y0, s = geo["patch"]
    corners = np.array([[[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s]]], np.float32)
    return cv2.perspectiveTransform(corners, hom)[0].astype(np.float64)
