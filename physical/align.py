"""The align stage: find the sheets in every photo, rectify every cell into a crop.

Per photo: detect the fiducial markers; lattice ids give (sheet, point); per sheet a RANSAC
homography (mm -> photo px) over all its markers checks that they are geometrically consistent and
locates the two run tag markers. Per cell: a homography from its (3 or 4) corner markers, whose
16 (or 12) corners give the reprojection error; the crop is the cell warped back to its digital
pixel size. Cells with too few markers are reported missing, never guessed.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .config import AlignConfig, Config
from .rundir import RunDir, read_json, write_image, write_json
from .sheets.layout import Layout
from .sheets.markers import detect_markers, marker_side_px

INSIDE_GRID = 16  # inside = fraction of a INSIDE_GRID x INSIDE_GRID grid of cell points in the photo
MIN_SHEET_MARKERS = 4  # lattice markers needed to accept a sheet whose run tag is not visible


# ----------------------------------------------------------------------------------------------
# photos


def read_photo(path: str | Path) -> np.ndarray:
    """A photo as 8-bit RGB; ValueError naming the reason for a file that is not a whole image.

    Pillow decodes first because it refuses truncated files (OpenCV fills them in with grey).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return np.array(im.convert("RGB"))
    except UnidentifiedImageError:
        raise ValueError(f"{path.name}: not an image file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path.name}: corrupt or truncated image ({e})") from None


@lru_cache(maxsize=4)
def _calibration(path: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
    try:
        d = json.loads(Path(path).read_text())
        size = d.get("image_size")
        return (np.asarray(d["camera_matrix"], np.float64).reshape(3, 3),
                np.asarray(d["dist_coeffs"], np.float64).ravel(), tuple(size) if size else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a camera calibration (JSON with camera_matrix, dist_coeffs): {e}") from None


def undistort(photo: np.ndarray, calibration_path: str | Path) -> np.ndarray:
    """Remove lens distortion with a fitted camera: JSON {camera_matrix, dist_coeffs[, image_size (w, h)]}.

    When the calibration was fitted at another resolution, the camera matrix is scaled to the photo.
    """
    k, dist, size = _calibration(str(calibration_path))
    h, w = photo.shape[:2]
    if size and tuple(size) != (w, h):
        k = k.copy()
        k[0] *= w / size[0]
        k[1] *= h / size[1]
    return cv2.undistort(photo, k, dist)


# ----------------------------------------------------------------------------------------------
# geometry


def _project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(-1, 1, 2), h).reshape(-1, 2)


def _sheet_fit(layout: Layout, found: dict[int, np.ndarray]) -> tuple[np.ndarray | None, set[int]]:
    """RANSAC homography mm -> px over a sheet's markers; returns it and the consistent points.

    A marker is consistent when its four corners lie within half a marker side of the fit.
    """
    points = sorted(found)
    if len(points) < 2:
        return None, set(points)
    src = np.concatenate([layout.point_corners(p) for p in points])
    dst = np.concatenate([found[p] for p in points])
    tol = max(2.0, 0.5 * float(np.median([marker_side_px(found[p]) for p in points])))
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, tol, maxIters=2000, confidence=0.999)
    if h is None:
        return None, set()
    err = np.linalg.norm(_project(h, src) - dst, axis=1).reshape(-1, 4).max(axis=1)
    good = {p for p, e in zip(points, err) if e < tol}
    if len(good) >= 2:  # refit on the consistent markers only
        sel = np.concatenate([layout.point_corners(p) for p in sorted(good)])
        h2, _ = cv2.findHomography(sel, np.concatenate([found[p] for p in sorted(good)]), 0)
        h = h2 if h2 is not None else h
    return h, good


def _sheet_tag(layout: Layout, h: np.ndarray, tags: dict[int, np.ndarray]) -> list[int | None]:
    """The tag marker ids seen at the sheet's two tag positions (None where none is seen)."""
    out: list[int | None] = []
    for centre in layout.tag_centers():
        sq = _project(h, Layout.square(centre, layout.marker))
        c, tol = sq.mean(axis=0), 0.5 * float(np.linalg.norm(sq[0] - sq[2]))
        near = [mid for mid, corners in tags.items() if np.linalg.norm(corners.mean(axis=0) - c) < tol]
        out.append(near[0] if len(near) == 1 else None)
    return out


def _warp_cell(photo: np.ndarray, h_cell: np.ndarray, rect: tuple[float, float, float, float],
               size: tuple[int, int]) -> np.ndarray:
    """The cell rectified to `size` (w, h) px; pixel (u, v) of the crop samples cell mm
    (x + (u + 0.5) w_mm / w, y + (v + 0.5) h_mm / h), as the PDF drew the digital pixels."""
    x, y, wm, hm = rect
    w, h = size
    a = np.array([[wm / w, 0, x + 0.5 * wm / w], [0, hm / h, y + 0.5 * hm / h], [0, 0, 1]])
    m = h_cell @ a  # crop px -> photo px
    corners = _project(h_cell, np.array([[x, y], [x + wm, y], [x + wm, y + hm], [x, y + hm]]))
    sides = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    scale = max(sides[0] / w, sides[2] / w, sides[1] / h, sides[3] / h)  # photo px per crop px
    # work on the cell's bounding box only (blurring a whole 12 MP photo per cell is wasteful)
    pad = int(np.ceil(3 * scale)) + 4
    x0 = max(int(np.floor(corners[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(corners[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + pad + 1, photo.shape[1])
    y1 = min(int(np.ceil(corners[:, 1].max())) + pad + 1, photo.shape[0])
    if x1 <= x0 or y1 <= y0:
        return np.zeros((h, w, 3), np.uint8)
    roi = photo[y0:y1, x0:x1]
    m = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ m
    if scale > 1.5:  # anti-alias before decimating
        roi = cv2.GaussianBlur(roi, (0, 0), 0.45 * np.sqrt(scale * scale - 1))
        flags = cv2.INTER_LINEAR
    elif scale < 1.0:
        flags = cv2.INTER_CUBIC
    else:
        flags = cv2.INTER_LINEAR
    return cv2.warpPerspective(roi, m, (w, h), flags=flags | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _inside(h_cell: np.ndarray, rect: tuple[float, float, float, float], shape: tuple[int, ...]) -> float:
    x, y, w, hh = rect
    t = (np.arange(INSIDE_GRID) + 0.5) / INSIDE_GRID
    gx, gy = np.meshgrid(x + t * w, y + t * hh)
    p = _project(h_cell, np.stack([gx.ravel(), gy.ravel()], axis=1))
    ok = (p[:, 0] >= -0.5) & (p[:, 0] <= shape[1] - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] <= shape[0] - 0.5)
    return float(ok.mean())


# ----------------------------------------------------------------------------------------------
# one photo


def align_photo(photo_rgb: np.ndarray, layout: Layout, tag: tuple[int, int] | list[int],
                images_px: dict[tuple[int, int], tuple[int, int]], cfg: AlignConfig,
                markers: dict[int, np.ndarray] | None = None) -> tuple[list[dict], list[str]]:
    """Crops of every cell of this run's sheets found in one photo, and a list of problems.

    `images_px` maps (sheet, slot) of every printed cell to its digital (w, h). A sheet is this
    run's when a run tag marker is visible at its tag position and matches `tag`; a visible tag that
    differs means another run's sheet (ignored). When no tag is visible (cut off, covered) the sheet
    is still accepted if at least MIN_SHEET_MARKERS (4) of its lattice markers fit one homography:
    one or two stray markers with colliding ids are not enough to claim a sheet.

    Crops are {sheet, slot, markers, reprojection_px, sharpness, inside, accepted, reason, image}.
    """
    tag = tuple(tag)
    if markers is None:  # guided capture and the live view pass the markers they already found
        markers = detect_markers(photo_rgb)
    if not markers:
        return [], ["no markers found"]
    sheets: dict[int, dict[int, np.ndarray]] = {}
    tags: dict[int, np.ndarray] = {}
    for mid, corners in markers.items():
        dec = layout.decode_id(mid)
        if dec is None:
            tags[mid] = corners
        elif dec[0] < layout.max_sheets:
            sheets.setdefault(dec[0], {})[dec[1]] = corners
    if not sheets:
        return [], [f"no sheet markers found ({len(markers)} other markers)"]

    crops: list[dict] = []
    problems: list[str] = []
    for sheet in sorted(sheets):
        found = sheets[sheet]
        h_sheet, good = _sheet_fit(layout, found)
        seen = _sheet_tag(layout, h_sheet, tags) if h_sheet is not None else [None, None]
        visible = [t for t in seen if t is not None]
        if any(t != want for t, want in zip(seen, tag) if t is not None):
            problems.append(f"sheet {sheet}: run tag {seen} is not this run's {list(tag)}; "
                            "another run's sheet, ignored")
            continue
        if not visible and len(good) < MIN_SHEET_MARKERS:
            problems.append(f"sheet {sheet}: run tag not visible and only {len(good)} consistent markers "
                            f"(need {MIN_SHEET_MARKERS}); ignored")
            continue
        slots = sorted(s for (sh, s) in images_px if sh == sheet)
        if not slots:
            problems.append(f"sheet {sheet}: not a sheet of this run's print; ignored")
            continue
        if len(good) < len(found):
            problems.append(f"sheet {sheet}: {len(found) - len(good)} markers off the sheet's geometry, not used")
        for slot in slots:
            pts = [p for p in layout.cell_points(slot) if p in good]
            if len(pts) < cfg.min_markers:
                problems.append(f"sheet {sheet} cell {slot}: {len(pts)} of 4 corner markers found "
                                f"(need {cfg.min_markers}); not cropped")
                continue
            src = np.concatenate([layout.point_corners(p) for p in pts])
            dst = np.concatenate([found[p] for p in pts])
            h_cell, _ = cv2.findHomography(src, dst, 0)
            if h_cell is None:
                problems.append(f"sheet {sheet} cell {slot}: degenerate marker geometry; not cropped")
                continue
            reproj = float(np.linalg.norm(_project(h_cell, src) - dst, axis=1).mean())
            rect = layout.cell_rect(slot)
            crop = _warp_cell(photo_rgb, h_cell, rect, images_px[(sheet, slot)])
            sharp = float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())
            inside = _inside(h_cell, rect, photo_rgb.shape)
            reasons = []
            if reproj > cfg.max_reprojection_px:
                reasons.append(f"reprojection {reproj:.2f} px > {cfg.max_reprojection_px:g}")
            if sharp < cfg.min_sharpness:
                reasons.append(f"sharpness {sharp:.1f} < {cfg.min_sharpness:g}")
            if inside < cfg.min_inside:
                reasons.append(f"inside {inside:.2f} < {cfg.min_inside:g}")
            crops.append({"sheet": sheet, "slot": slot, "markers": len(pts), "reprojection_px": round(reproj, 3),
                          "sharpness": round(sharp, 2), "inside": round(inside, 4), "accepted": not reasons,
                          "reason": "; ".join(reasons) or "ok", "image": crop})
    return crops, problems


# ----------------------------------------------------------------------------------------------
# the stage


def _crop_stems(files: list[Path]) -> list[str]:
    """A distinct, file-name-safe stem per photo, for the crops' names."""
    out: list[str] = []
    for p in files:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", p.stem) or "photo"
        stem, k = base, 2
        while stem in out:
            stem, k = f"{base}-{k}", k + 1
        out.append(stem)
    return out


def _rank(c: dict) -> tuple:
    return (c["accepted"], c["sharpness"], -c["reprojection_px"])


def align_stage(run: RunDir, cfg: Config) -> dict:
    """Align every photo in capture/photos/; write align/crops/*.png and align/crops.json."""
    lay_path = run.root / "print" / "layout.json"
    if not lay_path.is_file():
        raise FileNotFoundError(f"{lay_path}: missing; run the print stage first")
    printed = read_json(lay_path)
    layout = Layout.from_dict(printed["layout"])
    tag = tuple(printed["tag"])
    cells = {(c["sheet"], c["slot"]): c for c in printed["cells"]}
    images_px = {k: (c["width_px"], c["height_px"]) for k, c in cells.items()}
    calibration = cfg.resolve(cfg.align.camera_calibration) if cfg.align.camera_calibration else None
    if calibration is not None:
        _calibration(str(calibration))  # a bad calibration stops the stage, not every photo

    crops_dir = run.stage_dir("align") / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    for old in crops_dir.glob("s*-c*-*.png"):  # crops of an earlier pass
        old.unlink()

    photo_files = sorted(p for p in run.photos_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not photo_files:
        print(f"align: no photos in {run.photos_dir}")
    all_crops: list[dict] = []
    photos: list[dict] = []
    for path, stem in zip(photo_files, _crop_stems(photo_files)):
        entry = {"photo": path.name, "status": "ok", "reason": "", "sheets": [], "cells": 0, "problems": []}
        photos.append(entry)
        try:
            photo = read_photo(path)
            if calibration is not None:
                photo = undistort(photo, calibration)
        except ValueError as e:
            entry.update(status="skipped", reason=str(e).split(": ", 1)[-1])
            print(f"align: skipped {path.name}: {entry['reason']}")
            continue
        crops, problems = align_photo(photo, layout, tag, images_px, cfg.align)
        entry["problems"] = problems
        if not crops:
            entry.update(status="skipped", reason="; ".join(problems) or "no cells found")
            print(f"align: skipped {path.name}: {entry['reason']}")
            continue
        entry["sheets"] = sorted({c["sheet"] for c in crops})
        entry["cells"] = len(crops)
        for c in crops:
            rel = f"align/crops/s{c['sheet']:03d}-c{c['slot']:02d}-{stem}.png"
            write_image(run.root / rel, c.pop("image"))
            cell = cells[(c["sheet"], c["slot"])]
            all_crops.append({"photo": path.name, "sheet": c["sheet"], "slot": c["slot"], "item": cell["item"],
                              "role": cell["role"], "path": rel, **{k: c[k] for k in (
                                  "markers", "reprojection_px", "sharpness", "inside", "accepted", "reason")},
                              "best": False})

    best: dict[tuple[int, int], dict] = {}
    for c in all_crops:
        k = (c["sheet"], c["slot"])
        if k not in best or _rank(c) > _rank(best[k]):
            best[k] = c
    for c in best.values():
        c["best"] = True
    missing = []
    for k, cell in sorted(cells.items()):
        b = best.get(k)
        if b is None or not b["accepted"]:
            missing.append({"sheet": k[0], "slot": k[1], "item": cell["item"], "role": cell["role"],
                            "reason": "not found in any photo" if b is None else f"rejected: {b['reason']}"})
    write_json(run.root / "align" / "crops.json", {"crops": all_crops, "photos": photos, "missing": missing})
    return {"photos": len(photo_files), "skipped": sum(p["status"] == "skipped" for p in photos),
            "cells_found": len(cells) - len(missing), "cells_expected": len(cells)}
