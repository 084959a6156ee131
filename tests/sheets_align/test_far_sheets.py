"""Far, small, blurred and tilted sheets (issue 30): a sheet filling a third of a hurried photo,
two sheets in one photo of which one is far and tilted, and the one line a photo with no sheet
gets (the figure measured in it).

A run of 12 pairs (two A4 sheets of 12 cells) is printed by the real print stage; the photos are
posed with known geometry (`physical.sim.posed_photos`), so every cell's true corners are known.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from physical.align import align_photo
from physical.config import AlignConfig
from physical.sim import posed_photos as syn
from physical.sheets.layout import Layout
from tests.sheets_align.printed_run import printed_run

FRAME = (3072, 2304)


@pytest.fixture(scope="module")
def sheets(tmp_path_factory):
    return printed_run(tmp_path_factory.mktemp("far"), "far", 12)


def pose(layout: Layout, frac: float, angle: float, tilt: tuple[float, float], centre: tuple[float, float]):
    """Sheet mm -> px for a page whose longer side is `frac` of the frame's shorter side."""
    cell_px = frac * min(FRAME) * layout.cell / max(layout.page_w, layout.page_h)
    return syn.sheet_homography(layout, angle, cell_px, centre, tilt)


def shoot(pages, hs, rng, blur: float, noise: float = 6.0, jpeg: int = 66) -> np.ndarray:
    px = syn.desk(FRAME, rng)
    for page, h in zip(pages, hs, strict=True):
        px = syn.place(px, page, 300, h)
    return syn.camera(px, rng, blur=blur, noise=noise, gradient=0.3, jpeg=jpeg)


def errors(crops: list[dict], hs: list[np.ndarray], layout: Layout) -> dict[tuple[int, int], float]:
    out = {}
    for c in crops:
        truth = syn.project(hs[c["sheet"]], layout.cell_corners(c["slot"]))
        out[(c["sheet"], c["slot"])] = float(np.linalg.norm(np.array(c["corners_px"]) - truth, axis=1).max())
    return out


def test_a_sheet_filling_a_third_of_a_hurried_photo_is_found(sheets):
    """Tilted 0.24, blurred by 2.6 px, noise 6, JPEG 66, its markers about 20 px: every cell."""
    layout = sheets["layout"]
    h = pose(layout, 1 / 3, 200.0, (0.2, -0.15), (1800, 1300))
    photo = shoot(sheets["pages"][:1], [h], np.random.default_rng(5), blur=2.6)
    crops, problems = align_photo(photo, layout, sheets["tag"], sheets["sizes"], AlignConfig(),
                                  references=sheets["refs"])
    err = errors(crops, [h], layout)
    assert sorted(err) == [(0, s) for s in range(12)], problems
    assert max(err.values()) < 2.0 and all(c["accepted"] for c in crops), (err, [c["reason"] for c in crops])


def test_markers_of_12_px_are_found(sheets):
    """A sheet so far that its markers are about 12 px a side (its cells 68 px), tilted, soft."""
    layout = sheets["layout"]
    h = syn.sheet_homography(layout, 75.0, 12.0 / layout.marker * layout.cell, (900, 1500), (0.15, 0.1))
    photo = shoot(sheets["pages"][:1], [h], np.random.default_rng(7), blur=1.0, noise=4.0, jpeg=75)
    crops, problems = align_photo(photo, layout, sheets["tag"], sheets["sizes"], AlignConfig(),
                                  references=sheets["refs"])
    err = errors(crops, [h], layout)
    assert sorted(err) == [(0, s) for s in range(12)] and max(err.values()) < 2.0, (err, problems)


def test_two_sheets_one_near_one_far_and_tilted(sheets):
    """The near sheet's markers are found on a coarse copy of the photo; the far, tilted one (a
    third of the frame, markers about 16 px) is looked for outside it: both whole, none mixed up."""
    layout = sheets["layout"]
    hs = [pose(layout, 0.6, 80.0, (0.05, 0.05), (800, 1150)), pose(layout, 1 / 3, 150.0, (-0.24, 0.1), (2450, 1200))]
    photo = shoot(sheets["pages"], hs, np.random.default_rng(6), blur=1.8, noise=5.0, jpeg=72)
    crops, problems = align_photo(photo, layout, sheets["tag"], sheets["sizes"], AlignConfig(),
                                  references=sheets["refs"])
    err = errors(crops, hs, layout)
    assert sorted(err) == [(s, c) for s in (0, 1) for c in range(12)], problems
    assert max(err.values()) < 2.0, err


def test_a_photo_without_a_sheet_says_why(sheets):
    layout, tag, sizes = sheets["layout"], sheets["tag"], sheets["sizes"]
    rng = np.random.default_rng(8)

    def why(photo: np.ndarray) -> str:
        crops, problems = align_photo(photo, layout, tag, sizes, AlignConfig())
        assert crops == [] and len(problems) == 1, problems
        return problems[0]

    blank = syn.camera(syn.desk(FRAME, rng), rng, blur=1.0, noise=4.0, jpeg=80)
    assert why(blank).startswith("no markers found: nothing in the photo has a marker's black square")
    # another tool's markers: a board of 4x4 ArUco markers
    board = np.full((1200, 1600), 255, np.uint8)
    d4 = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_1000)
    for k in range(12):
        y, x = 100 + 350 * (k // 4), 100 + 380 * (k % 4)
        board[y:y + 200, x:x + 200] = cv2.aruco.generateImageMarker(d4, k, 200)
    line = why(syn.camera(cv2.cvtColor(board, cv2.COLOR_GRAY2RGB), rng, blur=1.0, noise=2.0, jpeg=85))
    assert "12 marker(s) of another dictionary (DICT_4X4_1000)" in line and "DICT_5X5_1000" in line, line
    # far too small: markers of about 6 px
    tiny = shoot(sheets["pages"][:1], [pose(layout, 0.1, 30.0, (0, 0), (1500, 1100))], rng, blur=0.8)
    line = why(tiny)
    assert "too small to read" in line and "marker-like outlines of about" in line, line
    assert 4 <= float(line.split("of about ")[1].split(" px")[0]) <= 8
    # far too blurred: markers of about 40 px blurred by 7 px
    soft = shoot(sheets["pages"][:1], [pose(layout, 0.7, 30.0, (0, 0), (1500, 1150))], rng, blur=7.0)
    line = why(soft)
    assert "too blurred to read: their edges spread over about" in line, line
    spread = float(line.split("spread over about ")[1].split(" px")[0])
    bit = float(line.split("their bits are ")[1].split(" px")[0])
    # a gaussian's 10-90 % rise is 2.56 sigma on a wide edge; a one-bit border narrower than the blur
    # shows less of it, never less than the blur itself
    assert 4.5 < bit < 7.5 and spread > max(bit, 7.0) and spread < 2.56 * 7.0 * 1.2, line
