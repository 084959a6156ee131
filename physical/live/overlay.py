"""What live mode draws over a frame: each cell's outline and its last prediction, the top-k
panel, the rates."""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from physical.align.sheetfit import sheet_instances
from physical.capture import draw

TRACK_NEAR = 6  # markers nearest to a cell that place its outline on the displayed frame


def cells_now(layout, markers: list, cells: list[dict]) -> list[dict]:
    """The cells of the last result where they are on the displayed frame: each cell's `quad`
    replaced by its corners placed by the markers found on this frame (a least-squares fit to the
    TRACK_NEAR lattice markers of its sheet nearest to it, within 1.5 lattice pitches, at least 2);
    a cell with no such markers (out of view, covered) is left out. The result was computed on an
    older frame: drawing its own quads would leave the outlines where the cells were then."""
    by_sheet: dict[int, list] = {}
    for m in markers:
        dec = layout.decode_id(m.id)
        if dec is not None:
            by_sheet.setdefault(dec[0], []).append((dec[1], m))
    found = {}
    for sheet, dets in by_sheet.items():
        inst = sheet_instances(layout, dets)
        if inst:
            found[sheet] = inst[0][1]  # the copy with the most markers
    out = []
    for c in cells:
        pts = found.get(c["sheet"])
        if not pts:
            continue
        corners = layout.cell_corners(c["slot"])
        points = sorted(pts)
        xy = np.array([layout.point_center(p) for p in points])
        d = np.linalg.norm(xy - corners.mean(axis=0), axis=1)
        near = [points[k] for k in np.argsort(d)[:TRACK_NEAR] if d[k] <= 1.5 * layout.pitch]
        if len(near) < 2:
            continue
        h, _ = cv2.findHomography(np.concatenate([layout.point_corners(p) for p in near]),
                                  np.concatenate([pts[p].corners for p in near]), 0)
        if h is None:
            continue
        quad = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), h).reshape(4, 2)
        out.append({**c, "quad": quad})
    return out


def cell_style(cell: dict) -> tuple[tuple, str]:
    """Colour and caption of a cell: adversarial green (still fools) / red (destroyed), clean white
    (correct) / yellow (wrong); grey when the image's label is not known."""
    name = cell["top"][0][1] if cell["top"] else "?"
    pct = f"{100 * cell['top'][0][2]:.0f}%" if cell["top"] else ""
    if cell["fooled"] is None:
        return draw.GREY, f"{cell['role']}: {name} {pct}"
    if cell["role"] == "adv":
        return (draw.GREEN, f"adv fools: {name} {pct}") if cell["fooled"] else (draw.RED, f"adv destroyed: {name} "
                                                                                          f"{pct}")
    return (draw.YELLOW, f"clean wrong: {name} {pct}") if cell["fooled"] else (draw.WHITE, f"clean ok: {name} {pct}")


MIN_SCALE = 0.3  # below this a caption is cut rather than shrunk further


def fit_caption(caption: str, width: float, scale: float) -> tuple[str, float]:
    """The caption and font scale whose label box (text + 8 px) fits `width` px: shrunk down to
    MIN_SCALE, then cut from the end ("..")."""
    tw = cv2.getTextSize(draw.ascii_text(caption), draw.FONT, scale, 1)[0][0]
    if tw + 8 <= width:
        return caption, scale
    scale = max(MIN_SCALE, scale * (width - 8) / max(tw, 1))
    while len(caption) > 1 and cv2.getTextSize(draw.ascii_text(caption), draw.FONT, scale, 1)[0][0] + 8 > width:
        caption = caption[:-3] + ".." if len(caption) > 3 else caption[:-1]
    return caption, scale


def cell_label(img: np.ndarray, caption: str, quad: np.ndarray, color, lw: int) -> None:
    """A cell's caption inside its cell, at the top, never wider than the cell: neighbouring cells'
    labels do not overlap (the full top-k is on the served page's table and on hover)."""
    x0, y0 = quad[:, 0].min() + lw, quad[:, 1].min() + lw
    width = quad[:, 0].max() - quad[:, 0].min() - 2 * lw
    text, scale = fit_caption(caption, width, draw.scale_for(img) * 0.9)
    draw.label_at(img, text, (x0, y0), color, scale)


def annotate(frame: np.ndarray, result: Optional[dict], stats: dict, title: str = "") -> np.ndarray:
    """The frame with the top-k (confidence bars), the per-cell overlays and the frame rates."""
    img = frame.copy()
    s = draw.scale_for(img)
    lw = max(2, int(round(img.shape[1] / 640)))
    if result is not None:
        for cell in result.get("cells", []):
            if cell.get("quad") is None:
                continue
            color, caption = cell_style(cell)
            q = np.asarray(cell["quad"])
            draw.poly(img, q, color, lw)
            cell_label(img, caption, q, color, lw)
    # top-k panel with bars
    lh = int(28 * s) + 6
    x0, y0 = 8, 8
    top = result["top"] if result else []
    bar_w = int(160 * s)
    names = [t[1][:28] for t in top]
    tw = max([cv2.getTextSize(n, draw.FONT, s, 1)[0][0] for n in names] + [int(220 * s)])
    head = f"whole frame: {title}" + (f"  (frame {result['frame']})" if result else "  (waiting for the model)")
    hw = cv2.getTextSize(draw.ascii_text(head), draw.FONT, s, 1)[0][0]
    w = max(tw + bar_w + int(90 * s), hw + 16)
    draw.shade(img, x0, y0, x0 + w, y0 + lh * (len(top) + 1) + 8)
    draw.text(img, head, (x0 + 8, y0 + lh - 6), s, draw.CYAN, outline=False)
    for i, (_idx, name, p) in enumerate(top):
        y = y0 + lh * (i + 2) - 6
        draw.text(img, name[:28], (x0 + 8, y), s, draw.WHITE, outline=False)
        bx = x0 + 16 + tw
        draw.bar(img, bx, y - int(18 * s), bar_w, int(18 * s), p, draw.GREEN if i == 0 else draw.GREY)
        draw.text(img, f"{100 * p:5.1f}%", (bx + bar_w + 6, y), s, draw.WHITE, outline=False)
    # rates
    line = (f"display {stats.get('display_fps', 0):.1f} fps   classified {stats.get('classified_fps', 0):.1f}/s   "
            f"model {stats.get('infer_ms', 0):.0f} ms   defence {stats.get('defence', 'none')}")
    h = img.shape[0]
    (tw2, th2), _ = cv2.getTextSize(line, draw.FONT, s, 1)
    draw.shade(img, 0, h - th2 - 16, tw2 + 20, h)
    draw.text(img, line, (10, h - 9), s, draw.WHITE, outline=False)
    return img
