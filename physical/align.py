"""The align stage: find the sheets in every photo, rectify every cell into a crop.

Per photo: detect the fiducial markers (`sheets.markers.detect_all`: coarse-to-fine ArUco, every
marker refined against its bit pattern); lattice ids give (sheet, point). The markers of one sheet
index are split into *sheet instances* by RANSAC homographies (mm -> photo px), so two sheets with
the same index in one photo (this run's and another run's, say) are told apart by geometry. Where
an instance's lattice or tag markers were missed, they are looked for again at the place the
markers around them predict (`sheets.markers.find_marker`: the id is read there, not assumed).

Run tag policy. Lattice ids repeat from run to run; the run tag (a pair of ids printed at the
page's four corners) tells the runs apart:
- both ids of this run's tag outvoting anything else read at the sheet's own tag places: this run's
  sheet (another run's tag matches with odds of 1 in 40 000);
- other ids outvoting this run's at the tag places (each id of the pair is printed at 4 places):
  another run's sheet (named when a run beside this one printed it), ignored; one covered or
  cut-off corner, even three, leaves the tag readable, and one misread marker is outvoted;
- the tag not readable in this photo (half of it or none: a close-up, corners covered or blurred):
  the crops are kept but count only when another photo of the run's photos proves this sheet by
  its tag *and* each crop shows its printed image (`compare`'s match >= MIN_MATCH); otherwise they
  are reported with the reason and not used. The one mistake left open: another run's sheet with
  the same number and the same images in the same places, photographed with every tag marker hidden, in a
  folder that also proves this run's sheet.

Per cell: a homography from its (3 or 4) corner markers, whose 12-16 corners give the reprojection
error; the crop is the cell warped back to its digital pixel size. Quality figures per crop: markers
used, reprojection error (px), sharpness (detail kept against the digital image: 1 = as sharp),
match (does it show its printed image), the fraction of the cell inside the photo; the `align.*`
thresholds decide which crops are accepted. Cells with too few markers are reported missing,
never guessed. Of several photos of one cell, the best accepted crop is marked `best` (the
sharpest; then the smallest reprojection error); classify uses only that one.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .config import AlignConfig, Config
from .rundir import RunDir, read_json, write_image, write_json
from .sheets.layout import TAG_BASE, Layout
from .sheets.markers import Marker, detect_all, find_marker, marker_side_px, project

INSIDE_GRID = 16  # inside = fraction of a INSIDE_GRID x INSIDE_GRID grid of cell points in the photo
MIN_SHEET_MARKERS = 2  # lattice markers that locate a sheet instance (a cell needs align.min_markers)
SHARPNESS_SIGMA = 1.0  # gaussian before the Laplacian of the sharpness figure (tames pixel noise)
MIN_MATCH = 0.5  # a crop of a sheet whose tag a photo does not show must show its image at least this well


# ----------------------------------------------------------------------------------------------
# photos


def _pdf_note(path: Path) -> str:
    """What a PDF in the photo folder is, as far as its metadata tells."""
    try:
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(str(path))
        try:
            subject = (pdf.get_metadata_dict().get("Subject") or "").strip()
        finally:
            pdf.close()
    except Exception:  # noqa: BLE001 - any unreadable PDF is just "a PDF"
        subject = ""
    if subject.startswith("physical run "):
        return f"a PDF (the printed sheets of {subject[9:]}), not a photo; print it and photograph the paper"
    return "a PDF, not a photo"


def read_photo(path: str | Path) -> np.ndarray:
    """A photo as 8-bit RGB; ValueError naming the file and the reason for a file that is not a
    whole image (not an image, a PDF, truncated, corrupt).

    Pillow decodes because it refuses truncated files (OpenCV fills them in with grey).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with open(path, "rb") as f:
            is_pdf = f.read(5) == b"%PDF-"
    except OSError as e:
        raise ValueError(f"{path.name}: cannot be read ({e.strerror})") from None
    if is_pdf:
        raise ValueError(f"{path.name}: {_pdf_note(path)}")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return np.array(im if im.mode == "RGB" else im.convert("RGB"))
    except UnidentifiedImageError:
        raise ValueError(f"{path.name}: not an image file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path.name}: corrupt or truncated image ({e})") from None


@lru_cache(maxsize=4)
def _calibration(path: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
    """camera_matrix, dist_coeffs, image_size of a camera.json (`physical calibrate camera`); a bad
    file raises CalibrationError (a ValueError and a UserError) naming the file and the bad key."""
    from .calibrate.files import load_camera

    cal = load_camera(path)
    return cal.camera_matrix, cal.dist_coeffs, cal.image_size


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


def _marker_errors(layout: Layout, h: np.ndarray, dets: list[tuple[int, Marker]]) -> np.ndarray:
    """Largest corner distance (px) of every (point, marker) from where `h` puts it."""
    src = np.concatenate([layout.point_corners(p) for p, _ in dets])
    dst = np.concatenate([m.corners for _, m in dets])
    return np.linalg.norm(project(h, src) - dst, axis=1).reshape(-1, 4).max(axis=1)


def _fit(layout: Layout, dets: list[tuple[int, Marker]]) -> np.ndarray | None:
    """Least-squares homography mm -> px through the corners of (point, marker) detections."""
    h, _ = cv2.findHomography(np.concatenate([layout.point_corners(p) for p, _ in dets]),
                              np.concatenate([m.corners for _, m in dets]), 0)
    return h


def _sheet_instances(layout: Layout, dets: list[tuple[int, Marker]]) -> list[tuple[np.ndarray, dict[int, Marker]]]:
    """Split the (point, marker) detections of one sheet index into physical sheets:
    [(homography mm -> px, {point: marker})], most markers first.

    RANSAC finds the largest set whose corners all lie within half a marker side of one
    homography (refitted on that set). A sheet's members are the markers within a quarter of the
    lattice pitch of where that homography puts them: a curled sheet or an uncalibrated lens bends
    the lattice by more than half a marker but far less than the distance to another sheet; cells
    then use their own corner markers only. The members are taken out and the search repeats on the
    rest (a second copy of the sheet, another run's sheet with the same index).
    """
    out = []
    rest = list(dets)
    while len(rest) >= MIN_SHEET_MARKERS:
        src = np.concatenate([layout.point_corners(p) for p, _ in rest])
        dst = np.concatenate([m.corners for _, m in rest])
        side = float(np.median([marker_side_px(m.corners) for _, m in rest]))
        tol = max(2.0, 0.5 * side)
        h, _ = cv2.findHomography(src, dst, cv2.RANSAC, tol, maxIters=2000, confidence=0.999)
        if h is None:
            break
        for _ in range(2):  # refit on the consistent markers, once more with the refined fit
            err = _marker_errors(layout, h, rest)
            good = [k for k in np.argsort(err) if err[k] < tol]
            if len(good) < MIN_SHEET_MARKERS:
                break
            h = _fit(layout, [rest[k] for k in good])
            if h is None:  # degenerate set: no homography through it
                break
        if len(good) < MIN_SHEET_MARKERS or h is None:
            break
        err = _marker_errors(layout, h, rest)
        loose = max(tol, 0.25 * layout.pitch * side / layout.marker)
        members = [k for k in np.argsort(err) if err[k] < loose]
        found: dict[int, Marker] = {}
        for k in members:  # the best fitting one where a point was detected twice
            found.setdefault(rest[k][0], rest[k][1])
        out.append((h, found))
        taken = set(members)
        rest = [d for k, d in enumerate(rest) if k not in taken]
    return out


def _predict(layout: Layout, found: dict[int, Marker], square_mm: np.ndarray) -> np.ndarray | None:
    """Where a marker square (4x2 mm) is in the photo, from the sheet's four lattice markers nearest
    to it: a local fit, so a curled sheet or lens distortion does not move it much."""
    points = sorted(found)
    xy = np.array([layout.point_center(p) for p in points])
    near = np.argsort(np.linalg.norm(xy - square_mm.mean(axis=0), axis=1))[:4]
    h = _fit(layout, [(points[i], found[points[i]]) for i in near])
    return None if h is None else project(h, square_mm)


def _in_photo(corners: np.ndarray, shape: tuple[int, ...]) -> bool:
    return bool((corners >= 1).all() and (corners[:, 0] < shape[1] - 2).all() and (corners[:, 1] < shape[0] - 2).all())


def _complete(grey: np.ndarray, layout: Layout, sheet: int, found: dict[int, Marker], tags: list[Marker]) -> None:
    """Look again, where they should be, for the sheet's lattice and tag markers that the pass over
    the whole photo missed (small and blurred ones, mostly): `markers.find_marker` reads the id
    there, nothing is assumed. Adds to `found` and `tags` in place."""
    for p in range(layout.lattice_points):
        if p in found:
            continue
        guess = _predict(layout, found, layout.point_corners(p))
        if guess is not None and _in_photo(guess, grey.shape):
            want = layout.marker_id(sheet, p)
            m = find_marker(grey, guess, lambda i: i == want)
            if m is not None and m.score > 0:
                found[p] = m
    centres = np.array([m.corners.mean(axis=0) for m in tags]) if tags else np.zeros((0, 2))
    for centre, _ in layout.tag_positions():
        guess = _predict(layout, found, Layout.square(centre, layout.marker))
        if guess is None or not _in_photo(guess, grey.shape):
            continue
        if len(centres) and np.linalg.norm(centres - guess.mean(axis=0), axis=1).min() < marker_side_px(guess):
            continue  # a tag marker is there already
        m = find_marker(grey, guess, lambda i: i >= TAG_BASE)
        if m is not None:
            tags.append(m)


def _tags_seen(layout: Layout, found: dict[int, Marker], tags: list[Marker]) -> list[tuple[int, int]]:
    """(k, id) of the tag markers seen at the sheet's tag places (k: which id of the pair belongs
    there; places predicted by `_predict`); a tag marker counts when its centre is within half a
    marker diagonal of the place."""
    out = []
    centres = np.array([m.corners.mean(axis=0) for m in tags]) if tags else np.zeros((0, 2))
    for centre, k in layout.tag_positions():
        sq = _predict(layout, found, Layout.square(centre, layout.marker))
        if sq is None:
            continue
        tol = 0.5 * float(np.linalg.norm(sq[0] - sq[2]))
        hit = np.flatnonzero(np.linalg.norm(centres - sq.mean(axis=0), axis=1) < tol)
        if len(hit) == 1:
            out.append((k, tags[int(hit[0])].id))
    return out


TAG_UNREAD = {"half": "run tag only half readable in this photo", "none": "run tag not visible in this photo"}


def _tag_verdict(seen: list[tuple[int, int]], tag: tuple[int, int],
                 other_runs: dict[tuple[int, int], str]) -> tuple[str, str | None]:
    """What the tag markers seen at a sheet's places say, by a vote per id of the pair (each is
    printed at 4 places): ("read", None) when both of this run's ids outvote anything else read
    at their places; ("other", why) when other ids outvote this run's at either; ("half" |
    "none", why) when the tag is only half or not at all readable (see the module docstring).
    The vote keeps one misread marker (ArUco's error correction can land on a wrong id in a
    blurred, compressed photo) from turning this run's sheet into another run's; a tie counts
    as not readable, never as either run."""
    right = [sum(1 for j, i in seen if j == k and i == tag[k]) for k in (0, 1)]
    wrong = [[i for j, i in seen if j == k and i != tag[k]] for k in (0, 1)]
    if any(len(wrong[k]) > right[k] for k in (0, 1)):
        other = tuple(max(set(w), key=w.count) if len(w) > r else t for w, r, t in zip(wrong, right, tag))
        who = other_runs.get(other)
        if who:
            return "other", f"a sheet of run {who}, not of this run; ignored"
        return "other", (f"a sheet of another run (run tag {other[0]}/{other[1]}; this run's is "
                         f"{tag[0]}/{tag[1]}); ignored")
    halves = {k for k in (0, 1) if right[k] > len(wrong[k])}
    if halves == {0, 1}:
        return "read", None
    status = "half" if halves else "none"
    what = ("only half readable (1 of its 2 markers)" if halves else
            "not visible (its markers at the page's corners are covered, blurred or outside the photo)")
    return status, (f"run tag {what}; its cells count only if another photo shows this sheet's run tag: "
                    "keep a corner of the page in the photo")


def _grey(img: np.ndarray) -> np.ndarray:
    return (cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img).astype(np.float32)


def _bands(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Band-pass (difference of gaussians, sigma 0.7 and 1.4 px) and zero-mean low-pass (sigma 4)."""
    low = cv2.GaussianBlur(x, (0, 0), 4.0)
    return cv2.GaussianBlur(x, (0, 0), 0.7) - cv2.GaussianBlur(x, (0, 0), 1.4), low - low.mean()


def compare(crop: np.ndarray, reference: np.ndarray | None) -> tuple[float | None, float | None]:
    """(sharpness, match) of a crop against its digital reference (the item's *clean* image, for
    both cells of a pair, so the adversarial perturbation, lost or not, counts for neither).

    sharpness: how much of the reference's fine detail the crop keeps, 1 = as sharp as the digital
    image: the gain of the crop's band-pass against the reference's, divided by the same gain at
    low frequencies (which takes out the print's and the camera's contrast). Noise does not
    correlate with the reference, so it does not pass for detail (the variance of the Laplacian
    counts it as sharpness); blur and misalignment lower it. None when the reference has no detail.
    match: correlation of the two low-passes: 0.9-1 when the crop shows the reference's image (0.87
    or more in the tests, lighting gradients of +-30 % included), about 0 for another image, lower
    when part of it is covered (a fifth of the cell: about 0.55) or lost in glare. None when the
    reference has next to no coarse structure (a low-pass standard deviation under 8 grey levels:
    a flat image, or pixel noise), where neither figure means much.
    Without a reference: (variance of the Laplacian of the crop after a SHARPNESS_SIGMA gaussian, a
    figure for ranking photos of one cell only; None).
    """
    c = _grey(crop)
    if reference is None:
        return float(cv2.Laplacian(cv2.GaussianBlur(c, (0, 0), SHARPNESS_SIGMA), cv2.CV_32F).var()), None
    r = _grey(reference)
    if r.shape != c.shape:
        r = cv2.resize(r, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_AREA)
    (bc, lc), (br, lr) = _bands(c), _bands(r)
    hf_ref, lf_ref, lf_crop = float((br * br).sum()), float((lr * lr).sum()), float((lc * lc).sum())
    if lf_ref <= 64.0 * lr.size or lf_crop <= 1e-6 * lc.size:  # coarse structure of 8 grey levels or less
        return None, None
    match = float((lc * lr).sum()) / np.sqrt(lf_ref * lf_crop)
    lf = float((lc * lr).sum()) / lf_ref
    if hf_ref < 0.01 * br.size:
        return None, match
    return (max(0.0, float((bc * br).sum()) / hf_ref / lf) if lf > 0.05 else 0.0), match


def sharpness_of(crop: np.ndarray, reference: np.ndarray | None = None) -> float | None:
    """The sharpness figure of `compare`."""
    return compare(crop, reference)[0]


def _warp_cell(photo: np.ndarray, h_cell: np.ndarray, rect: tuple[float, float, float, float],
               size: tuple[int, int]) -> np.ndarray:
    """The cell rectified to `size` (w, h) px; pixel (u, v) of the crop samples cell mm
    (x + (u + 0.5) w_mm / w, y + (v + 0.5) h_mm / h), as the PDF drew the digital pixels."""
    x, y, wm, hm = rect
    w, h = size
    a = np.array([[wm / w, 0, x + 0.5 * wm / w], [0, hm / h, y + 0.5 * hm / h], [0, 0, 1]])
    m = h_cell @ a  # crop px -> photo px
    corners = project(h_cell, np.array([[x, y], [x + wm, y], [x + wm, y + hm], [x, y + hm]]))
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
    p = project(h_cell, np.stack([gx.ravel(), gy.ravel()], axis=1))
    ok = (p[:, 0] >= -0.5) & (p[:, 0] <= shape[1] - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] <= shape[0] - 0.5)
    return float(ok.mean())


# ----------------------------------------------------------------------------------------------
# one photo


def _cell_crop(photo: np.ndarray, layout: Layout, found: dict[int, Marker], slot: int, size: tuple[int, int],
               cfg: AlignConfig, reference: np.ndarray | None) -> dict | str:
    """The crop of one cell with its quality figures, or why there is none."""
    pts = [p for p in layout.cell_points(slot) if p in found and found[p].score > 0]
    if len(pts) < cfg.min_markers:
        unrefined = sum(p in found and found[p].score == 0 for p in layout.cell_points(slot))
        why = f" and {unrefined} whose bit pattern did not match closely enough" if unrefined else ""
        return f"{len(pts)} of 4 corner markers found{why} (need {cfg.min_markers}); not cropped"
    src = np.concatenate([layout.point_corners(p) for p in pts])
    dst = np.concatenate([found[p].corners for p in pts])
    h_cell, _ = cv2.findHomography(src, dst, 0)
    if h_cell is None:
        return "degenerate marker geometry; not cropped"
    reproj = float(np.linalg.norm(project(h_cell, src) - dst, axis=1).mean())
    rect = layout.cell_rect(slot)
    crop = _warp_cell(photo, h_cell, rect, size)
    sharp, match = compare(crop, reference)
    inside = _inside(h_cell, rect, photo.shape)
    reasons = []
    if reproj > cfg.max_reprojection_px:
        reasons.append(f"reprojection {reproj:.2f} px > {cfg.max_reprojection_px:g}")
    if sharp is not None and sharp < cfg.min_sharpness:
        reasons.append(f"sharpness {sharp:.2f} < {cfg.min_sharpness:g}")
    if match is not None and match < cfg.min_match:
        reasons.append(f"match {match:.2f} < {cfg.min_match:g}")
    if inside < cfg.min_inside:
        reasons.append(f"inside {inside:.2f} < {cfg.min_inside:g}")
    return {"markers": len(pts), "reprojection_px": round(reproj, 3),
            "sharpness": None if sharp is None else round(sharp, 4),
            "match": None if match is None else round(match, 4),
            "inside": round(inside, 4), "reasons": reasons,
            "corners_px": np.round(project(h_cell, layout.cell_corners(slot)), 2).tolist(), "image": crop}


def align_photo(photo_rgb: np.ndarray, layout: Layout, tag: tuple[int, int] | list[int],
                images_px: dict[tuple[int, int], tuple[int, int]], cfg: AlignConfig, *,
                references: dict[tuple[int, int], np.ndarray] | None = None,
                other_runs: dict[tuple[int, int], str] | None = None,
                detections: list[Marker] | None = None) -> tuple[list[dict], list[str]]:
    """Crops of every cell of this run's sheets found in one photo, and a list of problems.

    `images_px` maps (sheet, slot) of every printed cell to its digital (w, h); `references` to
    the digital image its sharpness is measured against (`sharpness_of`; the item's clean image);
    `other_runs` names the runs beside this one by their tag; `detections` reuses markers already
    found in this photo by `detect_all`. The run tag policy is the module docstring's.

    Crops are {sheet, slot, run_tag (read | half | none), markers, reprojection_px, sharpness,
    match, inside, accepted, reason, corners_px (the cell's corners in the photo), image}; a crop of
    a sheet whose run tag is not read here is not accepted (its reason says so; the align stage
    accepts it when another photo proves the sheet). Problems are lines "sheet S: ..." and
    "sheet S cell C: ...".
    """
    tag = (int(tag[0]), int(tag[1]))
    grey = cv2.cvtColor(photo_rgb, cv2.COLOR_RGB2GRAY) if photo_rgb.ndim == 3 else photo_rgb
    markers = detect_all(grey) if detections is None else detections
    if not markers:
        return [], ["no markers found"]
    lattice: dict[int, list[tuple[int, Marker]]] = {}
    tags: list[Marker] = []
    for m in markers:  # ids past the layout's last sheet belong to nothing printed here: ignored
        dec = layout.decode_id(m.id)
        if dec is None:
            tags.append(m)
        elif dec[0] < layout.max_sheets:
            lattice.setdefault(dec[0], []).append((dec[1], m))
    if not lattice:
        return [], [f"no sheet markers found ({len(markers)} other markers)"]

    crops: list[dict] = []
    problems: list[str] = []
    for sheet in sorted(lattice):
        verdicts = []
        for _, found in _sheet_instances(layout, lattice[sheet]):
            _complete(grey, layout, sheet, found, tags)
            verdicts.append((*_tag_verdict(_tags_seen(layout, found, tags), tag, other_runs or {}), found))
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
                c = _cell_crop(photo_rgb, layout, found, slot, images_px[key], cfg, (references or {}).get(key))
                if isinstance(c, str):
                    problems.append(f"sheet {sheet} cell {slot}: {c}")
                    continue
                reasons = ([TAG_UNREAD[status]] if status != "read" else []) + c.pop("reasons")
                crops.append({"sheet": sheet, "slot": slot, "run_tag": status, **c, "accepted": not reasons,
                              "reason": "; ".join(reasons) or "ok"})
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
    return (c["accepted"], c["sharpness"] or 0.0, -c["reprojection_px"])


def _other_runs(run: RunDir) -> dict[tuple[int, int], str]:
    """Run tag -> name of every other run printed beside this one (same output folder)."""
    out = {}
    for lay in sorted(run.root.parent.glob("*/print/layout.json")):
        root = lay.parent.parent
        if root.resolve() == run.root.resolve():
            continue
        try:
            d = read_json(lay)
            out[tuple(d["tag"])] = f"'{root.name}' ({d.get('run_id', '?')}, {root})"
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
        reasons = c["reason"].split("; ")
        assert reasons[0] == TAG_UNREAD[c["run_tag"]]
        if c["sheet"] not in proven:
            reasons[0] += " nor in any other photo of this sheet"
        elif c["match"] is not None and c["match"] < MIN_MATCH:
            reasons[0] += f", and the cell does not show its printed image (match {c['match']:.2f} < {MIN_MATCH:g})"
        else:
            reasons = reasons[1:]
        c["accepted"] = not reasons
        c["reason"] = "; ".join(reasons) or "ok"


def _exclusions(crops: list[dict]) -> dict[str, int]:
    """How many crops each threshold excluded (a crop may fail several)."""
    out: dict[str, int] = {}
    for c in crops:
        if not c["accepted"]:
            for r in c["reason"].split("; "):
                k = "run tag" if r.startswith("run tag") else r.split(" ")[0]
                out[k] = out.get(k, 0) + 1
    return out


def reference_images(root: Path, cells: dict[tuple[int, int], dict]) -> dict[tuple[int, int], np.ndarray]:
    """(sheet, slot) -> the grey digital image a crop's sharpness and match are measured against:
    the item's clean image, for both cells of a pair (each file read once)."""
    clean = {c["item"]: c["image"] for c in cells.values() if c["role"] == "clean"}
    read: dict[str, np.ndarray | None] = {}
    out = {}
    for k, c in cells.items():
        rel = clean.get(c["item"], c["image"])
        if rel not in read:
            read[rel] = cv2.imread(str(Path(root) / rel), cv2.IMREAD_GRAYSCALE)
        if read[rel] is not None:
            out[k] = read[rel]
    return out


def align_stage(run: RunDir, cfg: Config) -> dict:
    """Align every photo in capture/photos/; write align/crops/*.png and align/crops.json.

    crops.json: `crops` (every crop of every photo, its quality figures, `accepted`/`reason` and
    `best` for the one used per cell), `photos` (status ok/skipped, reason, sheets, cells,
    problems), `missing` (cells with no accepted crop, with the reason), `excluded` (crops each
    threshold excluded). One line is printed for every photo skipped and every sheet ignored.
    """
    lay_path = run.root / "print" / "layout.json"
    if not lay_path.is_file():
        raise FileNotFoundError(f"{lay_path}: missing; run the print stage first")
    printed = read_json(lay_path)
    layout = Layout.from_dict(printed["layout"])
    tag = tuple(printed["tag"])
    cells = {(c["sheet"], c["slot"]): c for c in printed["cells"]}
    images_px = {k: (c["width_px"], c["height_px"]) for k, c in cells.items()}
    references = reference_images(run.root, cells)
    other_runs = _other_runs(run)
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
        crops, problems = align_photo(photo, layout, tag, images_px, cfg.align,
                                      references=references, other_runs=other_runs)
        entry["problems"] = problems
        if not crops:
            sheet_level = [p for p in problems if " cell " not in p]
            entry.update(status="skipped", reason="; ".join(sheet_level or problems) or "no cells found")
            print(f"align: skipped {path.name}: {entry['reason']}")
            continue
        for p in problems:
            if " cell " not in p:
                print(f"align: {path.name}: {p}")
        entry["sheets"] = sorted({c["sheet"] for c in crops})
        entry["cells"] = len(crops)
        for c in crops:
            rel = f"align/crops/s{c['sheet']:03d}-c{c['slot']:02d}-{stem}.png"
            write_image(run.root / rel, c.pop("image"))
            cell = cells[(c["sheet"], c["slot"])]
            all_crops.append({"photo": path.name, "sheet": c["sheet"], "slot": c["slot"], "item": cell["item"],
                              "role": cell["role"], "path": rel, **{k: c[k] for k in (
                                  "run_tag", "markers", "reprojection_px", "sharpness", "match", "inside", "accepted",
                                  "reason", "corners_px")}, "best": False})
    _judge_unread_tags(all_crops)

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
    excluded = _exclusions(all_crops)
    if excluded:
        n = sum(not c["accepted"] for c in all_crops)
        print(f"align: {n} of {len(all_crops)} crops excluded by the align thresholds: "
              + ", ".join(f"{v} by {k}" for k, v in sorted(excluded.items())))
    write_json(run.root / "align" / "crops.json",
               {"crops": all_crops, "photos": photos, "missing": missing, "excluded": excluded})
    return {"photos": len(photo_files), "skipped": sum(p["status"] == "skipped" for p in photos),
            "cells_found": len(cells) - len(missing), "cells_expected": len(cells),
            "crops": len(all_crops), "crops_excluded": sum(not c["accepted"] for c in all_crops)}
