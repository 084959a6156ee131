"""The marker-to-sheet fit shared by the align stage, guided capture and live mode.

The markers of one sheet index are split into *sheet instances* by RANSAC homographies (mm -> photo
px); markers missed by the pass over the whole photo are looked for again where the sheet's other
markers put them; the run tag markers seen at a sheet's tag places vote on whose sheet it is (the
policy is `physical.align`'s docstring).
"""
from __future__ import annotations

import cv2
import numpy as np

from physical.sheets.layout import TAG_BASE, TAG_RADIX, Layout
from physical.sheets.markers import SOFT_MIN, Marker, find_marker, marker_side_px, project, soft_scores

MIN_SHEET_MARKERS = 1  # lattice markers that start a sheet instance (one that stays alone is dropped)


def marker_errors(layout: Layout, h: np.ndarray, dets: list[tuple[int, Marker]]) -> np.ndarray:
    """Largest corner distance (px) of every (point, marker) from where `h` puts it."""
    src = np.concatenate([layout.point_corners(p) for p, _ in dets])
    dst = np.concatenate([m.corners for _, m in dets])
    return np.linalg.norm(project(h, src) - dst, axis=1).reshape(-1, 4).max(axis=1)


def fit(layout: Layout, dets: list[tuple[int, Marker]]) -> np.ndarray | None:
    """Least-squares homography mm -> px through the corners of (point, marker) detections."""
    h, _ = cv2.findHomography(np.concatenate([layout.point_corners(p) for p, _ in dets]),
                              np.concatenate([m.corners for _, m in dets]), 0)
    return h


def sheet_instances(layout: Layout, dets: list[tuple[int, Marker]]) -> list[tuple[np.ndarray, dict[int, Marker]]]:
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
        h: np.ndarray | None
        h, _ = cv2.findHomography(src, dst, cv2.RANSAC, tol, maxIters=2000, confidence=0.999)
        if h is None:
            break
        for _ in range(2):  # refit on the consistent markers, once more with the refined fit
            err = marker_errors(layout, h, rest)
            good = [k for k in np.argsort(err) if err[k] < tol]
            if len(good) < MIN_SHEET_MARKERS:
                break
            h = fit(layout, [rest[k] for k in good])
            if h is None:  # degenerate set: no homography through it
                break
        if len(good) < MIN_SHEET_MARKERS or h is None:
            break
        err = marker_errors(layout, h, rest)
        loose = max(tol, 0.25 * layout.pitch * side / layout.marker)
        members = [k for k in np.argsort(err) if err[k] < loose]
        found: dict[int, Marker] = {}
        for k in members:  # the best fitting one where a point was detected twice
            found.setdefault(rest[k][0], rest[k][1])
        out.append((h, found))
        taken = set(members)
        rest = [d for k, d in enumerate(rest) if k not in taken]
    return out


def predict(layout: Layout, found: dict[int, Marker], square_mm: np.ndarray) -> np.ndarray | None:
    """Where a marker square (4x2 mm) is in the photo, from the sheet's four lattice markers nearest
    to it: a local fit, so a curled sheet or lens distortion does not move it much."""
    points = sorted(found)
    xy = np.array([layout.point_center(p) for p in points])
    near = np.argsort(np.linalg.norm(xy - square_mm.mean(axis=0), axis=1))[:4]
    h = fit(layout, [(points[i], found[points[i]]) for i in near])
    return None if h is None else project(h, square_mm)


def in_photo(corners: np.ndarray, shape: tuple[int, ...]) -> bool:
    return bool((corners >= 1).all() and (corners[:, 0] < shape[1] - 2).all() and (corners[:, 1] < shape[0] - 2).all())


def complete(grey: np.ndarray, layout: Layout, sheet: int, found: dict[int, Marker], tags: list[Marker]) -> None:
    """Look again, where they should be, for the sheet's lattice and tag markers that the pass over
    the whole photo missed (small and blurred ones, mostly): `markers.find_marker` reads the id
    there, nothing is assumed. Adds to `found` and `tags` in place.

    The lattice grows outwards from the markers found: the point nearest to them is looked for
    first, so each guess comes from markers close by (from one marker, its neighbours are
    predicted well enough; from those, theirs); a second pass retries what the first could not
    reach. Run tag markers read by correlation need a wider margin over other ids than lattice
    markers (whose id is checked against the one the sheet puts there); one too blurred for that
    margin is read against the ids that can be printed at its place (`_tag_in_place`)."""
    missing = [p for p in range(layout.lattice_points) if p not in found]
    for _ in range(2):
        left: list[int] = []
        todo = list(missing)
        while todo:
            near = np.array([layout.point_center(q) for q in found])
            d = [float(np.linalg.norm(near - layout.point_center(p), axis=1).min()) for p in todo]
            p = todo.pop(int(np.argmin(d)))
            guess = predict(layout, found, layout.point_corners(p))
            m = None
            if guess is not None and in_photo(guess, grey.shape):
                want = layout.marker_id(sheet, p)
                m = find_marker(grey, guess, lambda i, want=want: i == want)
            if m is not None and m.score > 0:
                found[p] = m
            else:
                left.append(p)
        if len(left) == len(missing):
            break
        missing = left
    centres = np.array([m.corners.mean(axis=0) for m in tags]) if tags else np.zeros((0, 2))
    for centre, k in layout.tag_positions():
        guess = predict(layout, found, Layout.square(centre, layout.marker))
        if guess is None or not in_photo(guess, grey.shape):
            continue
        if len(centres) and np.linalg.norm(centres - guess.mean(axis=0), axis=1).min() < marker_side_px(guess):
            continue  # a tag marker is there already
        m = find_marker(grey, guess, lambda i: i >= TAG_BASE, margin=0.03) or _tag_in_place(grey, guess, k)
        if m is not None:
            tags.append(m)


def _tag_in_place(grey: np.ndarray, guess: np.ndarray, k: int) -> Marker | None:
    """A run tag marker too blurred to stand out from the whole dictionary, read against the ids that
    can be printed at its place: the k-th half of the tag ids, upright on the page (a rotated id
    or a lattice id is never printed there). Its best id must lead those by the tag margin."""
    half = range(TAG_BASE + k * TAG_RADIX, TAG_BASE + (k + 1) * TAG_RADIX)
    m = find_marker(grey, guess, lambda i: i in half, margin=0.0)
    if m is None or np.linalg.norm(m.corners - guess, axis=1).max() > 0.5 * marker_side_px(guess):
        return None  # not where the sheet puts it, or not upright
    scores = soft_scores(grey, m.corners)
    if scores is None:
        return None
    upright = scores[4 * half.start: 4 * half.stop: 4]  # rotation 0 of each id of the half
    order = np.argsort(upright)[::-1]
    best, second = float(upright[order[0]]), float(upright[order[1]])
    if half.start + int(order[0]) != m.id or best < SOFT_MIN or best - second < 0.03:
        return None
    return m


def tags_seen(layout: Layout, found: dict[int, Marker], tags: list[Marker]) -> list[tuple[int, int]]:
    """(k, id) of the tag markers seen at the sheet's tag places (k: which id of the pair belongs
    there; places predicted by `predict`); a tag marker counts when its centre is within half a
    marker diagonal of the place."""
    out = []
    centres = np.array([m.corners.mean(axis=0) for m in tags]) if tags else np.zeros((0, 2))
    for centre, k in layout.tag_positions():
        sq = predict(layout, found, Layout.square(centre, layout.marker))
        if sq is None:
            continue
        tol = 0.5 * float(np.linalg.norm(sq[0] - sq[2]))
        hit = np.flatnonzero(np.linalg.norm(centres - sq.mean(axis=0), axis=1) < tol)
        if len(hit) == 1:
            out.append((k, tags[int(hit[0])].id))
    return out


TAG_UNREAD = {"half": "run tag only half readable in this photo", "none": "run tag not visible in this photo"}


def tag_verdict(seen: list[tuple[int, int]], tag: tuple[int, int],
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
        other = tuple(max(set(w), key=w.count) if len(w) > r else t for w, r, t in zip(wrong, right, tag, strict=False))
        who = other_runs.get((other[0], other[1]))
        if who and who.startswith("other print"):  # this run's own outdated print (stages.printing)
            return "other", f"{who}; ignored"
        if who:
            return "other", f"a sheet of run {who}, not of this run; ignored"
        return "other", (f"a sheet of another run or of an outdated print of this one (run tag {other[0]}/{other[1]}; "
                         f"this print's is {tag[0]}/{tag[1]}); ignored")
    halves = {k for k in (0, 1) if right[k] > len(wrong[k])}
    if halves == {0, 1}:
        return "read", None
    status = "half" if halves else "none"
    what = ("only half readable (1 of its 2 markers)" if halves else
            "not visible (its markers at the page's corners are covered, blurred or outside the photo)")
    return status, (f"run tag {what}; its cells count only if another photo shows this sheet's run tag: "
                    "keep a corner of the page in the photo")


SHEET_FIT_MIN = 4  # refined lattice markers a sheet-placed cell needs around it
SHEET_FIT_NEAR = 8  # the markers nearest to a cell that place it


def place_by_sheet(layout: Layout, found: dict[int, Marker], slot: int) -> tuple[np.ndarray, float, int] | None:
    """(homography mm -> px, reprojection px, markers used) placing a cell from the sheet's other
    markers when its own corner markers are too few: a fit to the SHEET_FIT_NEAR refined lattice
    markers nearest to it (a local fit: a curled sheet or lens distortion bends the lattice less
    over a few cells than over the page), after dropping those that disagree with the rest by
    more than a few px (a marker placed wrongly by a glare or a finger's edge). None when fewer
    than SHEET_FIT_MIN markers are left, when they lie on one line, or when the cell is farther
    than 1.5 lattice pitches from all of them (extrapolating is guessing)."""
    refined = [(p, m) for p, m in found.items() if m.score > 0]
    if len(refined) < SHEET_FIT_MIN:
        return None
    centre = layout.cell_corners(slot).mean(axis=0)
    xy = np.array([layout.point_center(p) for p, _ in refined])
    dist = np.linalg.norm(xy - centre, axis=1)
    near = np.argsort(dist)[:SHEET_FIT_NEAR]
    if dist[near[0]] > 1.5 * layout.pitch:
        return None
    use = [refined[k] for k in near]
    for _ in range(3):  # fit, drop the markers that disagree, fit again
        if len(use) < SHEET_FIT_MIN:
            return None
        span = np.array([layout.point_center(p) for p, _ in use])
        if np.linalg.svd(span - span.mean(axis=0), compute_uv=False)[-1] < 0.3 * layout.pitch:
            return None  # (nearly) on one line: no hold on the other direction
        h = fit(layout, use)
        if h is None:
            return None
        err = marker_errors(layout, h, use)
        keep = err <= max(1.5, 3 * float(np.median(err)))
        if keep.all():
            break
        use = [d for d, k in zip(use, keep, strict=False) if k]
    else:
        return None
    src = np.concatenate([layout.point_corners(p) for p, _ in use])
    dst = np.concatenate([m.corners for _, m in use])
    return h, float(np.linalg.norm(project(h, src) - dst, axis=1).mean()), len(use)
