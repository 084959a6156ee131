"""Sheet geometry in millimetres: where cells, fiducial markers, caption and colour strip go.

One layout serves the PDF writer, the simulator and the align stage, so the three never disagree.
Coordinates are millimetres from the top-left corner of the page, x to the right, y down.

Cells sit on a grid; fiducial markers sit on the grid's lattice points (the corners shared by
neighbouring cells), in the gutters between cells. Every cell is therefore surrounded by four
markers, and any three of them give its homography. A marker's id encodes the sheet and its
lattice position: ``id = sheet * lattice_points + point``.

The *run tag* is a pair of markers (ids from [600, 800) and [800, 1000)) that encode a hash of the
run id (1 in 40 000 for another run). It is printed at the four corners of the page, both ends of
the caption band at the top and of the colour strip band at the bottom, so that covering or
cutting off one (or three) corners never hides it. Lattice ids repeat from run to run; the tag is
what tells this run's sheets from another run's (or another tool's markers).

Clean and adversarial images of one source sit side by side: pairs fill every row from the left,
(0, 1), (2, 3), ...; with an odd number of columns the last column holds pairs one above the other,
so a pair never straddles the end of a row (`pair_slots`).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

PAPERS_MM = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}
ARUCO_DICT = "DICT_5X5_1000"
DICT_SIZE = 1000
TAG_BASE = 600  # ids >= TAG_BASE are run tag markers; lattice markers use ids < TAG_BASE
TAG_RADIX = (DICT_SIZE - TAG_BASE) // 2  # two tag markers: first from [600, 800), second from [800, 1000)
CAPTION_MM = 16.0  # band at the top: caption, scale bar, run tag markers
STRIP_MM = 12.0  # band at the bottom: colour reference strip, run tag markers


def caption_mm(marker: float) -> float:
    """Height of the caption band: CAPTION_MM, or more when the run tag markers need it."""
    return max(CAPTION_MM, marker + 6.0)


def strip_mm(marker: float) -> float:
    """Height of the bottom band: STRIP_MM, or more when the run tag markers need it."""
    return max(STRIP_MM, marker + 4.0)


def run_tag(run_id: str, content: str = "") -> tuple[int, int]:
    """The two tag marker ids that identify a run's sheets; with `content` (a digest of what the cells
    show: `physical.stages.printing`), a reprint with other images, attacks, eps or models gets
    another tag, so a photo of the outdated print is told apart."""
    key = f"{run_id}/{content}" if content else run_id
    h = int(hashlib.sha256(key.encode()).hexdigest(), 16) % (TAG_RADIX * TAG_RADIX)
    return TAG_BASE + h // TAG_RADIX, TAG_BASE + TAG_RADIX + h % TAG_RADIX


@dataclass
class Layout:
    page_w: float
    page_h: float
    margin: float
    cell: float
    marker: float
    gap: float
    cols: int
    rows: int
    grid_x: float  # top-left of the grid (the first lattice gutter starts here)
    grid_y: float

    # -- derived ------------------------------------------------------------------------------
    @property
    def gutter(self) -> float:
        return self.marker + 2 * self.gap

    @property
    def pitch(self) -> float:
        return self.cell + self.gutter

    @property
    def cells_per_sheet(self) -> int:
        return 2 * len(self.pair_slots())  # the cells that are printed; an odd one out stays empty

    @property
    def lattice_points(self) -> int:
        return (self.cols + 1) * (self.rows + 1)

    @property
    def max_sheets(self) -> int:
        return TAG_BASE // self.lattice_points

    def sheets_for(self, pairs: int) -> int:
        """Sheets that `pairs` (clean, adversarial) image pairs fill; more than `max_sheets` cannot be printed."""
        return -(-pairs // len(self.pair_slots()))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    # -- cells ----------------------------------------------------------------------------
    def cell_rc(self, slot: int) -> tuple[int, int]:
        return divmod(slot, self.cols)

    def cell_rect(self, slot: int) -> tuple[float, float, float, float]:
        """(x, y, w, h) of a cell in mm."""
        r, c = self.cell_rc(slot)
        x = self.grid_x + self.gutter + c * self.pitch
        y = self.grid_y + self.gutter + r * self.pitch
        return x, y, self.cell, self.cell

    def cell_corners(self, slot: int) -> np.ndarray:
        """4x2 corners of a cell in mm: top-left, top-right, bottom-right, bottom-left."""
        x, y, w, h = self.cell_rect(slot)
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)

    def pair_slots(self) -> list[tuple[int, int]]:
        """(clean slot, adversarial slot) of every pair on a sheet, in reading order.

        Side by side in every row; with an odd number of columns the last column holds pairs one
        above the other (clean on top), and with odd rows too its bottom cell stays empty.
        """
        even = self.cols - self.cols % 2
        pairs = [(r * self.cols + c, r * self.cols + c + 1) for r in range(self.rows) for c in range(0, even, 2)]
        if self.cols % 2:
            c = self.cols - 1
            pairs += [(r * self.cols + c, (r + 1) * self.cols + c) for r in range(0, self.rows - 1, 2)]
        return sorted(pairs)

    def cell_points(self, slot: int) -> list[int]:
        """The four lattice points around a cell."""
        r, c = self.cell_rc(slot)
        n = self.cols + 1
        return [r * n + c, r * n + c + 1, (r + 1) * n + c + 1, (r + 1) * n + c]

    # -- markers --------------------------------------------------------------------------
    def point_center(self, point: int) -> tuple[float, float]:
        r, c = divmod(point, self.cols + 1)
        return (self.grid_x + self.gutter / 2 + c * self.pitch, self.grid_y + self.gutter / 2 + r * self.pitch)

    def marker_id(self, sheet: int, point: int) -> int:
        return sheet * self.lattice_points + point

    def decode_id(self, marker_id: int) -> tuple[int, int] | None:
        """(sheet, point) for a lattice marker id, None for a tag or foreign id."""
        if marker_id >= TAG_BASE:
            return None
        return divmod(marker_id, self.lattice_points)

    @property
    def tag_quiet(self) -> float:
        """White between the two markers of a tag pair: >= 2 marker bits."""
        return max(2 * self.gap, 2 * self.marker / 7)

    @property
    def tag_width(self) -> float:
        """Width of one tag pair (two markers and the white between them)."""
        return 2 * self.marker + self.tag_quiet

    def tag_positions(self) -> list[tuple[tuple[float, float], int]]:
        """(centre, k) of the 8 run tag markers: the tag's first (k = 0) and second (k = 1) marker,
        as a pair at each end of the caption band (top) and of the strip band (bottom)."""
        h = self.marker / 2
        x_left = (self.margin + h, self.margin + self.marker + self.tag_quiet + h)
        x_right = (self.page_w - self.margin - self.marker - self.tag_quiet - h, self.page_w - self.margin - h)
        y_top = self.margin + caption_mm(self.marker) / 2
        y_bottom = self.page_h - self.margin - strip_mm(self.marker) / 2
        return [((x, y), k) for y in (y_top, y_bottom) for xs in (x_left, x_right) for k, x in enumerate(xs)]

    @staticmethod
    def square(center: tuple[float, float], side: float) -> np.ndarray:
        """4x2 corners of a marker in ArUco order (TL, TR, BR, BL), mm."""
        cx, cy = center
        h = side / 2
        return np.array([[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]], np.float64)

    def point_corners(self, point: int) -> np.ndarray:
        return self.square(self.point_center(point), self.marker)

    # -- other furniture ----------------------------------------------------------------------
    def strip_rect(self) -> tuple[float, float, float, float]:
        """The colour reference strip between the bottom tag pairs: (x, y, w, h) mm."""
        band = strip_mm(self.marker)
        x = self.margin + self.tag_width + max(3.0, self.tag_quiet)
        h = min(8.0, band - 4)
        return x, self.page_h - self.margin - (band + h) / 2, self.page_w - 2 * x, h


def paper_size(sheet_cfg) -> tuple[float, float]:
    if sheet_cfg.paper == "custom":
        return float(sheet_cfg.width_mm), float(sheet_cfg.height_mm)
    return PAPERS_MM[sheet_cfg.paper]


def layout_for(sheet_cfg) -> Layout:
    """Fit as many cells as the paper holds; raises ValueError when not even two fit."""
    w, h = paper_size(sheet_cfg)
    m = sheet_cfg.margin_mm
    g = sheet_cfg.marker_mm + 2 * sheet_cfg.gap_mm
    pitch = sheet_cfg.cell_mm + g
    avail_w = w - 2 * m
    cap = caption_mm(sheet_cfg.marker_mm)
    avail_h = h - 2 * m - cap - strip_mm(sheet_cfg.marker_mm)
    cols = int((avail_w - g) // pitch)
    rows = int((avail_h - g) // pitch)
    if cols * rows < 2:
        raise ValueError(
            f"cell_mm {sheet_cfg.cell_mm:g} with marker_mm {sheet_cfg.marker_mm:g} leaves room for "
            f"{max(cols, 0)}x{max(rows, 0)} cells on a {w:g}x{h:g} mm page with margin {m:g} mm; "
            "at least 2 cells (a clean and an adversarial image) must fit"
        )
    grid_w = cols * pitch + g
    grid_h = rows * pitch + g
    gx = m + (avail_w - grid_w) / 2
    gy = m + cap + (avail_h - grid_h) / 2
    lay = Layout(w, h, m, sheet_cfg.cell_mm, sheet_cfg.marker_mm, sheet_cfg.gap_mm, cols, rows, gx, gy)
    if lay.max_sheets < 1:
        raise ValueError(f"{cols}x{rows} cells need more marker ids than the dictionary holds")
    if 2 * lay.tag_width + 30 > w - 2 * m:
        raise ValueError(f"marker_mm {sheet_cfg.marker_mm:g} is too large for a {w:g} mm wide page: "
                         "the run tag markers at its corners leave no room for the caption and colour strip")
    return lay
