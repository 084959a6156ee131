"""The align stage over a run's photos: crops, the best crop per cell, what is missing and why."""
from __future__ import annotations

import re
from pathlib import Path


from physical.config import Config
from physical import runfiles
from physical.log import say
from physical.rundir import RunDir, write_image
from physical.runtime import Eta
from physical.align.one_photo import REJECTIONS, align_photo, judge, rejection
from physical.align.photo_files import _calibration, read_photo, reference_images, undistort
from physical.align.quality import glare_or_cover
from physical.stages.printing import earlier_prints

MIN_MATCH = 0.5  # a crop of a sheet whose tag a photo does not show must show its image at least this well


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
    return (c["accepted"], c["placed"] == "cell", c["sharpness"] or 0.0, -c["reprojection_px"])


def _other_runs(run: RunDir) -> dict[tuple[int, int], str]:
    """Run tag -> name of every other run printed beside this one (same output folder)."""
    out = {}
    for lay in sorted(run.root.parent.glob(f"*/{runfiles.LAYOUT}")):
        root = lay.parent.parent
        if root.resolve() == run.root.resolve():
            continue
        try:
            other = runfiles.load_layout(root)
            out[other.tag] = f"'{root.name}' ({other.run_id or '?'}, {root})"
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _judge_unread_tags(crops: list[dict]) -> None:
    """Crops of sheets whose run tag a photo did not show: accepted when another photo proves the
    sheet (its tag read) and the cell shows its printed image (match >= MIN_MATCH); else their
    reason says which is missing. In place."""
    proven = {c["sheet"] for c in crops if c["run_tag"] == "read"}
    for c in crops:
        if c["run_tag"] == "read":
            continue
        first, rest = c["rejections"][0], c["rejections"][1:]
        assert first["code"] == "run_tag"
        if c["sheet"] not in proven:
            rest = [rejection("run_tag", first["text"] + " nor in any other photo of this sheet")] + rest
        elif c["match"] is not None and c["match"] < MIN_MATCH:
            rest = [rejection("run_tag", first["text"] + ", and the cell does not show its printed image "
                              f"(match {c['match']:.2f} < {MIN_MATCH:g})")] + rest
        c["rejections"] = rest
        judge(c)


def _exclusions(crops: list[dict]) -> dict[str, int]:
    """How many crops each threshold excluded (a crop may fail several)."""
    out: dict[str, int] = {}
    for c in crops:
        if not c["accepted"]:
            for r in c["rejections"]:
                k = REJECTIONS[r["code"]]
                out[k] = out.get(k, 0) + 1
    return out


def align_stage(run: RunDir, cfg: Config) -> dict:
    """Align every photo in capture/photos/; write align/crops/*.png and align/crops.json.

    crops.json: `crops` (every crop of every photo, its quality figures, `accepted`/`reason` and
    `best` for the one used per cell), `photos` (status ok/skipped, reason, sheets, cells,
    problems), `missing` (cells with no accepted crop, with the reason), `excluded` (crops each
    threshold excluded). One line is printed for every photo skipped and every sheet ignored.
    """
    printed = runfiles.load_layout(run, "run the print stage first")
    layout, tag, cells, images_px = printed.layout, printed.tag, printed.cells, printed.images_px
    references = reference_images(run.root, cells)
    other_runs = {**_other_runs(run), **earlier_prints(run, tag)}
    calibration = cfg.resolve(cfg.align.camera_calibration) if cfg.align.camera_calibration else None
    if calibration is not None:
        _calibration(str(calibration))  # a bad calibration stops the stage, not every photo

    crops_dir = run.stage_dir("align") / "crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    for old in crops_dir.glob("s*-c*-*.png"):  # crops of an earlier pass
        old.unlink()

    photo_files = sorted(p for p in run.photos_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not photo_files:
        say(f"align: no photos in {run.photos_dir}")
    all_crops: list[dict] = []
    photos: list[dict] = []
    eta = Eta("align", len(photo_files), unit="photo")
    for n_done, (path, stem) in enumerate(zip(photo_files, _crop_stems(photo_files), strict=True)):
        if n_done:
            eta.done(1)  # the photo before this one
        entry = {"photo": path.name, "status": "ok", "reason": "", "sheets": [], "cells": 0, "problems": []}
        photos.append(entry)
        photo = _read(path, calibration, entry)
        if photo is not None:
            crops, entry["problems"] = align_photo(photo, layout, tag, images_px, cfg.align,
                                                   references=references, other_runs=other_runs)
            all_crops += _photo_crops(run, path, stem, crops, cells, entry, references)
    if photo_files:
        eta.done(1)  # the last photo
    _judge_unread_tags(all_crops)
    missing = _choose_best(all_crops, cells, photos)
    for line in reshoot_lines(missing, run.root):
        say(f"align: {line}")
    excluded = _exclusions(all_crops)
    if excluded:
        n = sum(not c["accepted"] for c in all_crops)
        say(f"align: {n} of {len(all_crops)} crops excluded by the align thresholds: "
              + ", ".join(f"{v} by {k}" for k, v in sorted(excluded.items())))
    runfiles.save_crops(run, runfiles.AlignedCrops(all_crops, photos, missing, excluded))
    return {"photos": len(photo_files), "skipped": sum(p["status"] == "skipped" for p in photos),
            "cells_found": len(cells) - len(missing), "cells_expected": len(cells),
            "crops": len(all_crops), "crops_excluded": sum(not c["accepted"] for c in all_crops),
            "other_print": other_print_sheets(photos)}


def _read(path: Path, calibration, entry: dict):
    """The photo (undistorted with the camera calibration, if any); None, the photo skipped in
    `entry`, where it cannot be read."""
    try:
        photo = read_photo(path)
        if calibration is not None:
            photo = undistort(photo, calibration)
        return photo
    except ValueError as e:
        entry.update(status="skipped", reason=str(e).split(": ", 1)[-1])
        say(f"align: skipped {path.name}: {entry['reason']}")
        return None


def _photo_crops(run: RunDir, path: Path, stem: str, crops: list[dict], cells: dict, entry: dict,
                 references: dict) -> list[dict]:
    """One photo's crops written (align/crops/) and as crops.json rows; the photo's `entry` filled in."""
    problems = entry["problems"]
    if not crops:
        sheet_level = [p for p in problems if " cell " not in p]
        entry.update(status="skipped", reason="; ".join(sheet_level or problems) or "no cells found")
        say(f"align: skipped {path.name}: {entry['reason']}")
        return []
    for p in problems:
        if " cell " not in p:
            say(f"align: {path.name}: {p}")
    entry["sheets"] = sorted({c["sheet"] for c in crops})
    entry["cells"] = len(crops)
    rows = []
    for c in crops:
        rel = f"align/crops/s{c['sheet']:03d}-c{c['slot']:02d}-{stem}.png"
        image = c.pop("image")
        write_image(run.root / rel, image)
        cell = cells[(c["sheet"], c["slot"])]
        rows.append({"photo": path.name, "sheet": c["sheet"], "slot": c["slot"], "item": cell["item"],
                     "role": cell["role"], "path": rel, **{k: c[k] for k in (
                         "run_tag", "markers", "placed", "placed_by", "reprojection_px", "sharpness", "match", "inside",
                         "rejections", "accepted", "reason", "corners_px")}, "best": False})
        if any(r["code"] == "match" for r in c["rejections"]):  # what covers it, for the reshoot advice
            rows[-1]["covered_by"] = glare_or_cover(image, references.get((c["sheet"], c["slot"])))
    return rows


def _choose_best(all_crops: list[dict], cells: dict, photos: list[dict]) -> list[dict]:
    """Mark each cell's best crop (`best`); the cells with no accepted crop, with the reason and its
    `cause` (`_cause`)."""
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
                            "reason": "not found in any photo" if b is None else f"rejected: {b['reason']}",
                            "cause": _cause(b, k, photos)})
    return missing


# a rejected crop's first rejection -> why its cell is missing, in the words of the reshoot advice
CAUSES = {"match": "covered", "sharpness": "blur", "reprojection": "blur", "inside": "cut off", "run_tag": "run tag"}


def _cause(best: dict | None, cell: tuple[int, int], photos: list[dict]) -> str:
    """Why a cell has no accepted crop: glare, finger, blur, cut off, run tag (its sheet's run tag in
    no photo) or not found (its sheet or its markers in no photo)."""
    if best is None:
        head = f"sheet {cell[0]} cell {cell[1]}: "
        lines = [p for e in photos for p in e["problems"] if p.startswith(head)]
        return "cut off" if any("outside the photo" in p for p in lines) else "not found"
    codes = [r["code"] for r in best["rejections"]]
    cause = CAUSES[next((c for c in ("match", "inside", "sharpness", "reprojection") if c in codes), codes[0])]
    return best.get("covered_by", "finger") if cause == "covered" else cause


ADVICE = {"glare": "tilt the sheet or the light so no glare falls on it", "finger": "hold it by its edges",
          "blur": "hold still and let the camera focus", "cut off": "keep the whole page in the frame",
          "run tag": "keep a corner of the page in the photo", "not found": "the whole page, nearer and in focus"}


def reshoot_lines(missing: list[dict], run_root: Path | str = "RUN") -> list[str]:
    """One line per sheet with cells that have no accepted crop (each with its cause), and one line
    saying which sheets to photograph again and how; [] when none is missing."""
    by_sheet: dict[int, list[dict]] = {}
    for m in missing:
        by_sheet.setdefault(m["sheet"], []).append(m)
    lines = []
    for sheet, ms in sorted(by_sheet.items()):
        causes: dict[str, list[str]] = {}
        for m in ms:
            causes.setdefault(m["cause"], []).append(str(m["slot"]))
        lines.append(f"sheet {sheet}: {len(ms)} cell(s) with no accepted crop: "
                     + "; ".join(f"{c}: cell(s) {', '.join(slots)}" for c, slots in causes.items()))
    if by_sheet:
        how = "; ".join(ADVICE[c] for c in sorted({m["cause"] for m in missing}))
        lines.append(f"photograph sheet(s) {', '.join(map(str, sorted(by_sheet)))} again ({how}) into a folder and "
                     f"run `physical capture {run_root} --source folder:FOLDER`: the photos so far are kept and each "
                     "cell's best crop is used")
    return lines


def other_print_sheets(photos: list[dict]) -> int:
    """Sheets seen in the photos that belong to an outdated print of this run (refused: "other print")."""
    return sum(p.startswith("sheet ") and ": other print:" in p for e in photos for p in e["problems"])
