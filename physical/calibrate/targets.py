"""Calibration targets: the ChArUco board (camera) and the colour chart (printer and camera), as PDFs.

Both use ArUco markers of ``DICT_4X4_250`` (not the sheets' ``DICT_5X5_1000``, so neither target
is ever taken for a sheet): the board uses ids 0 .. 34, the chart ids CHART_ID0 .. CHART_ID0 + 9.

The colour chart (version 1), in *chart millimetres* (origin at the top-left corner of the patch
grid, x right, y down; where the page puts the chart does not matter to the fit):

- a 12 x 12 grid of square patches (PATCH_MM, PITCH_MM apart, white paper between them): a
  5 x 5 x 5 grid over the RGB cube (levels 0, 64, 128, 191, 255) and a 19-step grey ramp, in a
  fixed shuffled order so that no colour region sits in one corner of the page (an uneven light
  would otherwise look like a colour error);
- ten markers around it (corners, side midpoints, and two beside the edge target): any three give
  the chart's homography, so a photo need not show all of them;
- a slanted edge target below the grid: a black square rotated by EDGE_DEG, whose four edges give
  the channel's blur (the ISO 12233 slanted-edge idea: the edge crosses the pixel grid at every
  sub-pixel phase);
- the white paper between patches, sampled at every crossing of the gaps, gives the light's
  unevenness over the page (the flat field).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from reportlab.pdfgen import canvas

from physical.channel.chart import GRID, chart_colours  # noqa: F401  (chart_colours: part of the targets' interface)
from physical.rundir import write_bytes
from physical.sheets.layout import PAPERS_MM

DICTIONARY = "DICT_4X4_250"
CHART_VERSION = 1
CHART_ID0 = 200  # chart marker ids: CHART_ID0 .. CHART_ID0 + 9
PITCH_MM = 13.5
GAP_MM = 3.0
PATCH_MM = PITCH_MM - GAP_MM
MARKER_MM = 10.0
MARKER_GAP_MM = 4.0  # white between the grid and the markers around it
EDGE_MM = 30.0  # side of the slanted edge square
EDGE_DEG = 5.0
EDGE_BAND_MM = 36.0  # height of the band below the markers under the grid: the edge target
CAPTION_MM = 16.0
MARGIN_MM = 10.0


@lru_cache(maxsize=1)
def aruco_dictionary() -> cv2.aruco.Dictionary:
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DICTIONARY))


def marker_bits(marker_id: int) -> np.ndarray:
    """(n+2)x(n+2) bool matrix of a marker of the targets' dictionary, border included; True = black."""
    d = aruco_dictionary()
    side = d.markerSize + 2
    return cv2.aruco.generateImageMarker(d, int(marker_id), side, borderBits=1) < 128


# ----------------------------------------------------------------------------------------------
# the ChArUco board


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board: cols x rows chessboard squares, markers in the white squares."""

    cols: int = 7
    rows: int = 10
    square_mm: float = 24.0
    marker_mm: float = 18.0

    def board(self) -> cv2.aruco.CharucoBoard:
        return _board(self)

    @property
    def markers(self) -> int:
        return (self.cols * self.rows) // 2

    @property
    def corners(self) -> int:
        return (self.cols - 1) * (self.rows - 1)

    def describe(self) -> str:
        return (f"{self.cols}x{self.rows} squares of {self.square_mm:g} mm, markers {self.marker_mm:g} mm, "
                f"{DICTIONARY} ids 0..{self.markers - 1}")

    def to_dict(self) -> dict:
        return {"cols": self.cols, "rows": self.rows, "square_mm": self.square_mm, "marker_mm": self.marker_mm,
                "dictionary": DICTIONARY}


@lru_cache(maxsize=8)
def _board(spec: BoardSpec) -> cv2.aruco.CharucoBoard:
    if spec.cols < 3 or spec.rows < 3:
        raise ValueError(f"a ChArUco board needs at least 3x3 squares, not {spec.cols}x{spec.rows}")
    if not 0 < spec.marker_mm < spec.square_mm:
        raise ValueError(f"marker_mm {spec.marker_mm:g} must be smaller than square_mm {spec.square_mm:g}")
    return cv2.aruco.CharucoBoard((spec.cols, spec.rows), float(spec.square_mm), float(spec.marker_mm),
                                  aruco_dictionary())


def parse_board(text: str) -> tuple[int, int]:
    """'7x10' -> (7, 10)."""
    try:
        a, b = text.lower().split("x")
        return int(a), int(b)
    except ValueError:
        raise ValueError(f"--board {text!r}: expected COLSxROWS, e.g. 7x10") from None


def board_image(spec: BoardSpec, px_per_mm: float = 4.0) -> np.ndarray:
    """The board as a grey uint8 image, `px_per_mm` pixels per millimetre, no margin."""
    w = int(round(spec.cols * spec.square_mm * px_per_mm))
    h = int(round(spec.rows * spec.square_mm * px_per_mm))
    return spec.board().generateImage((w, h), marginSize=0, borderBits=1)


def _black_squares(spec: BoardSpec) -> np.ndarray:
    """rows x cols bool: which chessboard squares OpenCV's board has black."""
    img = spec.board().generateImage((spec.cols * 20, spec.rows * 20), marginSize=0, borderBits=1)
    return img[1::20, 1::20][: spec.rows, : spec.cols] < 128  # a square's corner: never a marker bit


# ----------------------------------------------------------------------------------------------
# the colour chart


def patch_rect(slot: int) -> tuple[float, float, float, float]:
    """(x, y, w, h) of a patch in chart mm."""
    r, c = divmod(slot, GRID)
    return c * PITCH_MM, r * PITCH_MM, PATCH_MM, PATCH_MM


def patch_quad(slot: int, inset: float = 0.0) -> np.ndarray:
    """4x2 corners (TL, TR, BR, BL) of a patch in chart mm, shrunk by `inset` of its side each side."""
    x, y, w, h = patch_rect(slot)
    d = inset * w
    return np.array([[x + d, y + d], [x + w - d, y + d], [x + w - d, y + h - d], [x + d, y + h - d]], np.float64)


def grid_size_mm() -> float:
    return GRID * PITCH_MM - GAP_MM


def white_points() -> np.ndarray:
    """(n, 2) chart mm: centres of the white gap crossings inside the grid and around it."""
    g = grid_size_mm()
    ticks = np.concatenate([[-GAP_MM / 2], np.arange(1, GRID) * PITCH_MM - GAP_MM / 2, [g + GAP_MM / 2]])
    xx, yy = np.meshgrid(ticks, ticks)
    return np.stack([xx.ravel(), yy.ravel()], 1)


def _band_centre() -> float:
    return grid_size_mm() + 2 * MARKER_GAP_MM + MARKER_MM + EDGE_BAND_MM / 2


def edge_square() -> np.ndarray:
    """4x2 chart mm: corners of the slanted edge square (clockwise on the page)."""
    cx, cy = grid_size_mm() / 2, _band_centre()
    h = EDGE_MM / 2
    t = np.deg2rad(EDGE_DEG)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    sq = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    return sq @ rot.T + [cx, cy]


def chart_markers() -> dict[int, np.ndarray]:
    """Marker id -> 4x2 corners (TL, TR, BR, BL) in chart mm."""
    g = grid_size_mm()
    off = MARKER_GAP_MM + MARKER_MM / 2
    lo, hi, mid, band = -off, g + off, g / 2, _band_centre()
    centres = [(lo, lo), (mid, lo), (hi, lo), (lo, mid), (hi, mid), (lo, hi), (mid, hi), (hi, hi),
               (lo, band), (hi, band)]
    h = MARKER_MM / 2
    out = {}
    for k, (cx, cy) in enumerate(centres):
        out[CHART_ID0 + k] = np.array([[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]])
    return out


def chart_extent() -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) chart mm of everything printed (markers included)."""
    pts = np.concatenate(list(chart_markers().values()) + [edge_square()])
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def chart_origin(paper: str) -> tuple[float, float]:
    """Where chart mm (0, 0) lies on the page (page mm, top-left origin)."""
    pw, ph = PAPERS_MM[paper]
    x0, y0, x1, y1 = chart_extent()
    top = MARGIN_MM + CAPTION_MM
    avail = ph - MARGIN_MM - top
    if x1 - x0 > pw - 2 * MARGIN_MM or y1 - y0 > avail:
        raise ValueError(f"the colour chart does not fit on {paper} paper")
    return (pw - (x1 - x0)) / 2 - x0, top + (avail - (y1 - y0)) / 2 - y0


# ----------------------------------------------------------------------------------------------
# PDFs


class _Pdf:
    """Drawing in page millimetres (top-left origin) on a reportlab canvas."""

    def __init__(self, paper: str, title: str):
        self.w, self.h = PAPERS_MM[paper]
        self.buf = io.BytesIO()
        self.c = canvas.Canvas(self.buf, pagesize=(self.w * _MM, self.h * _MM), invariant=1)
        self.c.setTitle(title)
        self.c.setCreator("physical")

    def rect(self, x, y, w, h, rgb=(0, 0, 0)) -> None:
        self.c.setFillColorRGB(*(v / 255 for v in rgb))
        self.c.rect(x * _MM, (self.h - y - h) * _MM, w * _MM, h * _MM, stroke=0, fill=1)

    def polygon(self, pts: np.ndarray, rgb=(0, 0, 0)) -> None:
        self.c.setFillColorRGB(*(v / 255 for v in rgb))
        p = self.c.beginPath()
        p.moveTo(pts[0][0] * _MM, (self.h - pts[0][1]) * _MM)
        for x, y in pts[1:]:
            p.lineTo(x * _MM, (self.h - y) * _MM)
        p.close()
        self.c.drawPath(p, stroke=0, fill=1)

    def marker(self, marker_id: int, x: float, y: float, side: float) -> None:
        bits = marker_bits(marker_id)
        n = bits.shape[0]
        cell = side / n
        path = self.c.beginPath()
        for r in range(n):
            for c in range(n):
                if bits[r, c]:
                    path.rect((x + c * cell) * _MM, (self.h - y - (r + 1) * cell) * _MM, cell * _MM, cell * _MM)
        self.c.setFillColorRGB(0, 0, 0)
        self.c.drawPath(path, stroke=0, fill=1)

    def text(self, x, y, s, size, bold=False) -> None:
        self.c.setFillColorRGB(0, 0, 0)
        self.c.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        self.c.drawString(x * _MM, (self.h - y) * _MM, s)

    def scale_bar(self, x, y, length) -> None:
        self.rect(x, y - 0.35, length, 0.35)
        for k in range(int(length // 10) + 1):
            self.rect(x + k * 10 - 0.175, y - 2.0, 0.35, 2.0)
        self.text(x, y + 3.0, f"scale bar: must measure {length:g} mm", 6)

    def finish(self) -> bytes:
        self.c.showPage()
        self.c.save()
        return self.buf.getvalue()


_MM = 72.0 / 25.4


def charuco_pdf(spec: BoardSpec = BoardSpec(), paper: str = "a4") -> bytes:
    """The ChArUco board on one page, centred, with a caption and a scale bar."""
    pw, ph = PAPERS_MM[paper]
    bw, bh = spec.cols * spec.square_mm, spec.rows * spec.square_mm
    top = MARGIN_MM + CAPTION_MM
    if bw > pw - 2 * MARGIN_MM or bh > ph - top - MARGIN_MM:
        raise ValueError(f"a {spec.cols}x{spec.rows} board of {spec.square_mm:g} mm squares "
                         f"({bw:g}x{bh:g} mm) does not fit on {paper} paper; use smaller squares")
    x0, y0 = (pw - bw) / 2, top + (ph - top - MARGIN_MM - bh) / 2
    pdf = _Pdf(paper, "physical ChArUco calibration board")
    black = _black_squares(spec)
    for r in range(spec.rows):
        for c in range(spec.cols):
            if black[r, c]:
                pdf.rect(x0 + c * spec.square_mm, y0 + r * spec.square_mm, spec.square_mm, spec.square_mm)
    b = spec.board()
    for mid, pts in zip(np.asarray(b.getIds()).ravel(), b.getObjPoints(), strict=False):
        tl = np.asarray(pts)[0]
        pdf.marker(int(mid), x0 + float(tl[0]), y0 + float(tl[1]), spec.marker_mm)
    pdf.text(MARGIN_MM, MARGIN_MM + 4, "physical - ChArUco board for camera calibration", 9, bold=True)
    pdf.text(MARGIN_MM, MARGIN_MM + 8, spec.describe(), 7)
    pdf.text(MARGIN_MM, MARGIN_MM + 11.5, "Print at 100 %, keep it flat; 15-30 photos (or a slow video) from many "
                                          "angles,", 6.5)
    pdf.text(MARGIN_MM, MARGIN_MM + 14.5, "the board in every part of the frame. Squares not "
             f"{spec.square_mm:g} mm? Give the size with --square-mm.", 6.5)
    pdf.scale_bar(pw - MARGIN_MM - 50, MARGIN_MM + 9.5, 50)
    return pdf.finish()


def colour_chart_pdf(paper: str = "a4") -> bytes:
    """The colour chart on one page (see the module docstring)."""
    ox, oy = chart_origin(paper)
    pdf = _Pdf(paper, f"physical colour chart v{CHART_VERSION}")
    for slot, rgb in enumerate(chart_colours()):
        x, y, w, h = patch_rect(slot)
        pdf.rect(ox + x, oy + y, w, h, tuple(int(v) for v in rgb))
    for mid, corners in chart_markers().items():
        pdf.marker(mid, ox + corners[0, 0], oy + corners[0, 1], MARKER_MM)
    pdf.polygon(edge_square() + [ox, oy])
    pw, _ = PAPERS_MM[paper]
    pdf.text(MARGIN_MM, MARGIN_MM + 4, f"physical - colour chart v{CHART_VERSION}", 9, bold=True)
    pdf.text(MARGIN_MM, MARGIN_MM + 8, "Print at 100 % with the printer, paper and settings of your sheets.", 6.5)
    pdf.text(MARGIN_MM, MARGIN_MM + 11.5, "Photograph it like a sheet (same camera, light, distance); 4-10 photos,",
             6.5)
    pdf.text(MARGIN_MM, MARGIN_MM + 14.5, "page flat, every patch in view, no glare or shadow.", 6.5)
    pdf.scale_bar(pw - MARGIN_MM - 50, MARGIN_MM + 9.5, 50)
    return pdf.finish()


def write_targets(folder: str | Path, paper: str = "a4", spec: BoardSpec = BoardSpec()) -> list[Path]:
    """Write charuco.pdf and colour-chart.pdf into `folder`; returns their paths."""
    folder = Path(folder)
    out = [write_bytes(folder / "charuco.pdf", charuco_pdf(spec, paper)),
           write_bytes(folder / "colour-chart.pdf", colour_chart_pdf(paper))]
    return out
