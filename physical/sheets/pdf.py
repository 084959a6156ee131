"""Write the sheets of a run as one multi-page PDF (page i = sheet i).

Every page carries, in the layout's millimetres: the cells (each image embedded at its native
pixels, losslessly, and drawn at exactly `layout.cell` mm: no resampling in the PDF), a lattice
marker at every lattice point, the run tag markers at the page's four corners, a caption (title,
run id, sheet number, "print at 100 % / actual size", cell size, a scale bar) in the caption band,
a label under each cell, and a colour reference strip (grey ramp, primaries and secondaries) in
the bottom band.

Markers are vector squares drawn from the dictionary's bit matrix, so they stay crisp at any dpi.
reportlab's origin is the bottom-left corner in points; the layout's is the top-left in mm.
"""
from __future__ import annotations

import io
from pathlib import Path

from reportlab import rl_config
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas

from physical.rundir import write_bytes
from physical.sheets.layout import Layout, run_tag
from physical.sheets.markers import marker_bits

FONT = "Helvetica"
FONT_BOLD = "Helvetica-Bold"
GREY_STEPS = 11  # 0 %, 10 %, ..., 100 % grey
PRIMARIES = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0)]


class _Page:
    """Drawing in layout millimetres (top-left origin) on a reportlab canvas."""

    def __init__(self, c: canvas.Canvas, layout: Layout):
        self.c = c
        self.h = layout.page_h

    def rect(self, x: float, y: float, w: float, h: float, rgb=(0, 0, 0), stroke: bool = False) -> None:
        self.c.setFillColorRGB(*(v / 255 for v in rgb))
        self.c.rect(x * mm, (self.h - y - h) * mm, w * mm, h * mm, stroke=int(stroke), fill=1)

    def text(self, x: float, y: float, s: str, size: float, font: str = FONT, align: str = "left") -> None:
        """Text with its baseline at layout y (mm)."""
        self.c.setFillColorRGB(0, 0, 0)
        self.c.setFont(font, size)
        fn = {"left": self.c.drawString, "centre": self.c.drawCentredString, "right": self.c.drawRightString}[align]
        fn(x * mm, (self.h - y) * mm, s)

    def marker(self, marker_id: int, center: tuple[float, float], side: float) -> None:
        """A marker as one filled path of black runs (no seams between neighbouring bits)."""
        bits = marker_bits(marker_id)
        n = bits.shape[0]
        cell = side / n
        x0, y0 = center[0] - side / 2, center[1] - side / 2
        path = self.c.beginPath()
        for r in range(n):
            c = 0
            while c < n:
                if not bits[r, c]:
                    c += 1
                    continue
                start = c
                while c < n and bits[r, c]:
                    c += 1
                x, y = x0 + start * cell, y0 + r * cell
                path.rect(x * mm, (self.h - y - cell) * mm, (c - start) * cell * mm, cell * mm)
        self.c.setFillColorRGB(0, 0, 0)
        self.c.drawPath(path, stroke=0, fill=1)


def _fit(s: str, font: str, size: float, width_mm: float) -> str:
    """`s`, cut with an ellipsis where it is wider than `width_mm`."""
    if stringWidth(s, font, size) <= width_mm * mm:
        return s
    while s and stringWidth(s + "...", font, size) > width_mm * mm:
        s = s[:-1]
    return s + "..."


def _scale_bar(p: _Page, x: float, y: float, length: float) -> None:
    """A `length` mm bar with a tick every 10 mm (5 mm on short bars), baseline at y."""
    line = 0.35
    p.rect(x, y - line, length, line)
    step = 10.0 if length >= 20 else 5.0
    k = 0
    while k * step <= length + 1e-9:
        tall = 2.2 if k == 0 or abs(k * step - length) < 1e-9 else 1.2
        p.rect(x + k * step - line / 2, y - tall, line, tall)
        k += 1
    p.text(x, y - 2.8, "0", 5.5, align="centre")
    p.text(x + length, y - 2.8, f"{length:g} mm", 5.5, align="centre")
    p.text(x + length / 2, y + 3.0, f"scale bar: must measure {length:g} mm", 5.5, align="centre")


def _caption_span(layout: Layout) -> tuple[float, float]:
    """x from and to (mm) of the caption's text and scale bar, between the top tag pairs."""
    return layout.margin + layout.tag_width + 4, layout.page_w - layout.margin - layout.tag_width - 6


def scale_bar_mm(layout: Layout) -> float:
    """Length of the scale bar in the caption: 50 mm, shorter on narrow pages."""
    x0, x1 = _caption_span(layout)
    return next((b for b in (50.0, 20.0, 10.0) if x1 - x0 - b - 4 >= 60), 10.0)


def _caption(p: _Page, layout: Layout, tag: tuple[int, int], title: str, run_id: str, sheet: int, n: int) -> None:
    for centre, k in layout.tag_positions():
        p.marker(tag[k], centre, layout.marker)
    top = layout.margin
    x, x1 = _caption_span(layout)
    bar = scale_bar_mm(layout)
    bar_x = x1 - bar
    _scale_bar(p, bar_x, top + 9.5, bar)
    text_w = bar_x - 4 - x
    p.text(x, top + 4.0, _fit(title, FONT_BOLD, 9, text_w), 9, FONT_BOLD)
    info = f"run {run_id}  |  sheet {sheet + 1} of {n}  |  cell {layout.cell:g} mm"
    p.text(x, top + 8.0, _fit(info, FONT, 7, text_w), 7)
    how = "Print at 100 % / actual size (not 'fit to page')"
    p.text(x, top + 11.5, _fit(how, FONT_BOLD, 7, text_w), 7, FONT_BOLD)
    p.text(x, top + 14.5, _fit("Keep the black squares visible and flat when photographing.", FONT, 6, text_w), 6)


def _strip(p: _Page, layout: Layout) -> None:
    """Colour reference strip: a grey ramp (black to white), a gap, then R G B C M Y."""
    x, y, w, h = layout.strip_rect()
    colours = [(round(255 * i / (GREY_STEPS - 1)),) * 3 for i in range(GREY_STEPS)]
    slots = len(colours) + 1 + len(PRIMARIES)
    pw = w / slots
    for i, rgb in enumerate(colours):
        p.rect(x + i * pw, y, pw, h, rgb)
    for i, rgb in enumerate(PRIMARIES):
        p.rect(x + (len(colours) + 1 + i) * pw, y, pw, h, rgb)
    # a thin outline so the white patch is visible
    p.c.setStrokeColorRGB(0.6, 0.6, 0.6)
    p.c.setLineWidth(0.2 * mm)
    p.c.rect(x * mm, (p.h - y - h) * mm, len(colours) * pw * mm, h * mm, stroke=1, fill=0)


def render_sheets(layout: Layout, cells: list[dict], run_id: str, title: str,
                  tag: tuple[int, int] | None = None) -> tuple[bytes, int]:
    """The PDF as bytes and its number of pages; see `write_sheets` (`tag`: default the run id's)."""
    if not cells:
        raise ValueError("no cells to print")
    n = max(int(c["sheet"]) for c in cells) + 1
    if n > layout.max_sheets:
        raise ValueError(f"{n} sheets need more marker ids than the layout has ({layout.max_sheets} sheets at most)")
    by_sheet: dict[int, list[dict]] = {}
    for c in cells:
        if not 0 <= int(c["slot"]) < layout.cols * layout.rows:
            raise ValueError(f"cell slot {c['slot']} is outside the {layout.cols}x{layout.rows} grid")
        by_sheet.setdefault(int(c["sheet"]), []).append(c)
    tag = tag or run_tag(run_id)
    a85 = rl_config.useA85
    rl_config.useA85 = 0  # binary (Flate only) image streams: ASCII85 in pure Python costs 0.2 s an image
    try:
        return _render(layout, by_sheet, n, tag, run_id, title)
    finally:
        rl_config.useA85 = a85


def _render(layout: Layout, by_sheet: dict[int, list[dict]], n: int, tag: tuple[int, int], run_id: str,
            title: str) -> tuple[bytes, int]:
    buf = io.BytesIO()
    cv = canvas.Canvas(buf, pagesize=(layout.page_w * mm, layout.page_h * mm), invariant=1)
    cv.setTitle(title)
    cv.setSubject(f"physical run {run_id}")
    cv.setCreator("physical")
    label_size = min(6.0, (layout.gutter - 0.5) / 0.3528 * 0.6)
    for sheet in range(n):
        p = _Page(cv, layout)
        for point in range(layout.lattice_points):
            p.marker(layout.marker_id(sheet, point), layout.point_center(point), layout.marker)
        for c in by_sheet.get(sheet, []):
            x, y, w, h = layout.cell_rect(int(c["slot"]))
            cv.drawImage(str(c["image"]), x * mm, (layout.page_h - y - h) * mm, w * mm, h * mm)
            label = _fit(str(c.get("label", "")), FONT, label_size, w)
            p.text(x + w / 2, y + h + min(layout.gap, 1.0) + label_size * 0.3528, label, label_size, align="centre")
        _caption(p, layout, tag, title, run_id, sheet, n)
        _strip(p, layout)
        cv.showPage()
    cv.save()
    return buf.getvalue(), n


def write_sheets(path: str | Path, layout: Layout, cells: list[dict], run_id: str, title: str,
                 tag: tuple[int, int] | None = None) -> int:
    """Write one PDF, page = sheet; `cells` are {sheet, slot, image (PNG path), label}; `tag`: the run
    tag markers (default: the run id's, `layout.run_tag`). Returns pages."""
    data, n = render_sheets(layout, cells, run_id, title, tag)
    write_bytes(path, data)
    return n
