"""One photo: every cell of this run's sheets in it, cropped, with its quality figures."""
from __future__ import annotations

import cv2
import numpy as np

from physical.config import AlignConfig
from physical.sheets.layout import Layout
from physical.sheets.markers import Marker, detect_all, project
from physical.align.quality import compare, inside_fraction, warp_cell
from physical.align.diagnose import why_no_sheet
from physical.align.seek import seek_markers
from physical.align.sheetfit import TAG_UNREAD, complete, place_by_sheet, sheet_instances, tag_verdict, tags_seen


def _cell_crop(photo: np.ndarray, layout: Layout, found: dict[int, Marker], slot: int, size: tuple[int, int],
               cfg: AlignConfig, reference: np.ndarray | None) -> dict | str:
    """The crop of one cell with its quality figures, or why there is none."""
    pts = [p for p in layout.cell_points(slot) if p in found and found[p].score > 0]
    placed = "cell"
    # all four of its own markers: the cell's own fit; fewer: a fit to the sheet's markers around
    # it (its own among them), or, where those are too few, its own alone when there are enough
    by_sheet = place_by_sheet(layout, found, slot) if len(pts) < 4 else None
    if by_sheet is not None:
        h_cell, reproj, used = by_sheet
        placed = "sheet"
        if len(pts) < cfg.min_markers and inside_fraction(h_cell, layout.cell_rect(slot), photo.shape) < cfg.min_inside:
            return (f"{len(pts)} of 4 corner markers found; placed by the sheet's markers it is partly outside the "
                    "photo; not cropped")
    elif len(pts) >= cfg.min_markers:
        src = np.concatenate([layout.point_corners(p) for p in pts])
        dst = np.concatenate([found[p].corners for p in pts])
        h_cell, _ = cv2.findHomography(src, dst, 0)
        if h_cell is None:
            return "degenerate marker geometry; not cropped"
        reproj = float(np.linalg.norm(project(h_cell, src) - dst, axis=1).mean())
        used = len(pts)
    else:
        unrefined = sum(p in found and found[p].score == 0 for p in layout.cell_points(slot))
        why = f" and {unrefined} whose bit pattern did not match closely enough" if unrefined else ""
        return (f"{len(pts)} of 4 corner markers found{why} (need {cfg.min_markers}), and too few of the "
                "sheet's markers around it; not cropped")
    rect = layout.cell_rect(slot)
    crop = warp_cell(photo, h_cell, rect, size)
    sharp, match = compare(crop, reference)
    inside = inside_fraction(h_cell, rect, photo.shape)
    reasons = []
    if reproj > cfg.max_reprojection_px:
        reasons.append(rejection("reprojection", f"reprojection {reproj:.2f} px > {cfg.max_reprojection_px:g}"))
    if sharp is not None and sharp < cfg.min_sharpness:
        reasons.append(rejection("sharpness", f"sharpness {sharp:.2f} < {cfg.min_sharpness:g}"))
    if match is not None and match < cfg.min_match:
        reasons.append(rejection("match", f"match {match:.2f} < {cfg.min_match:g}"))
    if inside < cfg.min_inside:
        reasons.append(rejection("inside", f"inside {inside:.2f} < {cfg.min_inside:g}"))
    return {"markers": len(pts), "placed": placed, "placed_by": used, "reprojection_px": round(reproj, 3),
            "sharpness": None if sharp is None else round(sharp, 4),
            "match": None if match is None else round(match, 4),
            "inside": round(inside, 4), "reasons": reasons,
            "corners_px": np.round(project(h_cell, layout.cell_corners(slot)), 2).tolist(), "image": crop}


# why a crop is not accepted: code -> the name the align stage's summary counts it under
REJECTIONS = {"run_tag": "run tag", "reprojection": "reprojection", "sharpness": "sharpness", "match": "match",
              "inside": "inside"}


def rejection(code: str, text: str) -> dict:
    """One reason a crop is not accepted: its code (REJECTIONS) and the sentence shown to the user."""
    assert code in REJECTIONS, code
    return {"code": code, "text": text}


def judge(crop: dict) -> None:
    """`accepted` and the one-line `reason` of a crop from its `rejections`. In place."""
    crop["accepted"] = not crop["rejections"]
    crop["reason"] = "; ".join(r["text"] for r in crop["rejections"]) or "ok"


def align_photo(photo_rgb: np.ndarray, layout: Layout, tag: tuple[int, int] | list[int],
                images_px: dict[tuple[int, int], tuple[int, int]], cfg: AlignConfig, *,
                references: dict[tuple[int, int], np.ndarray] | None = None,
                other_runs: dict[tuple[int, int], str] | None = None,
                detections: list[Marker] | None = None) -> tuple[list[dict], list[str]]:
    """Crops of every cell of this run's sheets found in one photo, and a list of problems.

    `images_px` maps (sheet, slot) of every printed cell to its digital (w, h); `references` to
    the digital image its sharpness is measured against (`sharpness_of`; the item's clean image);
    `other_runs` names the runs beside this one by their tag; `detections` reuses markers already
    found in this photo by `detect_all` (then the photo is not searched again outside the sheets they
    make: `seek.seek_markers`). The run tag policy is the module docstring's.

    Crops are {sheet, slot, run_tag (read | half | none), markers, placed (cell | sheet), placed_by,
    reprojection_px, sharpness,
    match, inside, rejections ({code, text}: `rejection`), accepted, reason (their texts), corners_px (the cell's
    corners in the photo), image}; a crop of
    a sheet whose run tag is not read here is not accepted (its reason says so; the align stage
    accepts it when another photo proves the sheet). Problems are lines "sheet S: ..." and
    "sheet S cell C: ...".
    """
    tag = (int(tag[0]), int(tag[1]))
    grey = cv2.cvtColor(photo_rgb, cv2.COLOR_RGB2GRAY) if photo_rgb.ndim == 3 else photo_rgb
    if detections is None:  # the thorough pass, then the part of the photo outside the sheets it found
        markers = detect_all(grey)
        markers = markers + seek_markers(grey, layout, markers)
    else:
        markers = detections
    lattice, tags = _by_sheet(layout, markers)
    if not lattice:
        return [], [why_no_sheet(grey, layout, markers)]
    crops: list[dict] = []
    problems: list[str] = []
    for sheet in sorted(lattice):
        verdicts = []
        for _, found in sheet_instances(layout, lattice[sheet]):
            complete(grey, layout, sheet, found, tags)
            if len(found) < 2:  # one marker that nothing around it confirms: not a sheet
                continue
            verdicts.append((*tag_verdict(tags_seen(layout, found, tags), tag, other_runs or {}), found))
        _sheet_crops(photo_rgb, layout, sheet, verdicts, images_px, cfg, references or {}, crops, problems)
    if not crops and not problems:  # lattice markers, each alone: no sheet
        return [], [why_no_sheet(grey, layout, tags)]
    return crops, problems


def _by_sheet(layout: Layout, markers: list[Marker]) -> tuple[dict[int, list[tuple[int, Marker]]], list[Marker]]:
    """The lattice markers by sheet ((point, marker) each), and the other markers (run tags)."""
    lattice: dict[int, list[tuple[int, Marker]]] = {}
    tags: list[Marker] = []
    for m in markers:  # ids past the layout's last sheet belong to nothing printed here: ignored
        dec = layout.decode_id(m.id)
        if dec is None:
            tags.append(m)
        elif dec[0] < layout.max_sheets:
            lattice.setdefault(dec[0], []).append((dec[1], m))
    return lattice, tags


def _sheet_crops(photo_rgb: np.ndarray, layout: Layout, sheet: int, verdicts: list, images_px: dict,
                 cfg: AlignConfig, references: dict, crops: list[dict], problems: list[str]) -> None:
    """The crops of one sheet's cells from the first copy of it in the photo (a proven one first),
    appended to `crops`; what is wrong appended to `problems`."""
    taken = False
    for status, why, found in sorted(verdicts, key=lambda v: v[0] != "read"):  # a proven one first
        if status == "other":
            problems.append(f"sheet {sheet}: {why}")
            continue
        if not any(sh == sheet for sh, _ in images_px):
            problems.append(f"sheet {sheet}: not a sheet of this run's print (the print has fewer sheets); ignored")
            continue
        if taken:
            problems.append(f"sheet {sheet}: a second copy of this sheet in the photo; ignored")
            continue
        taken = True
        if why:
            problems.append(f"sheet {sheet}: {why}")
        for slot in sorted(s for sh, s in images_px if sh == sheet):
            key = (sheet, slot)
            c = _cell_crop(photo_rgb, layout, found, slot, images_px[key], cfg, references.get(key))
            if isinstance(c, str):
                problems.append(f"sheet {sheet} cell {slot}: {c}")
                continue
            reasons = ([rejection("run_tag", TAG_UNREAD[status])] if status != "read" else []) + c.pop("reasons")
            crops.append({"sheet": sheet, "slot": slot, "run_tag": status, **c, "rejections": reasons})
            judge(crops[-1])
