"""Photos from the real world: hurried, far-away photos with glare and a finger over the sheet, and
live overlays that follow a moving sheet.

A run of 6 pairs (one A4 sheet, 12 cells of 45 mm) is printed by the real print stage; photos are
made by `physical.sim.posed_photos` (the hurried level: a 7 MP frame, the page's longer side a third to 60 %
of the frame's shorter side, defocus blur 1.6-2.8 px, noise 4-7, JPEG 62-78, tilt up to 0.24, a
glare spot and a finger), so every cell's true corners are known.
"""
from __future__ import annotations

import numpy as np
import pytest

from physical.align import align_photo
from physical.config import AlignConfig
from physical.sim import posed_photos as syn
from physical.sheets.layout import Layout
from physical.sheets.markers import detect_all
from tests.sheets_align.printed_run import printed_run


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    run = printed_run(tmp_path_factory.mktemp("hurried"), "hurried", 6)
    return {**run, "page": run["pages"][0]}


def corner_error(c: dict, h: np.ndarray, layout: Layout) -> float:
    truth = syn.project(h, layout.cell_corners(c["slot"]))
    return float(np.linalg.norm(np.array(c["corners_px"]) - truth, axis=1).max())


def test_hurried_photos_place_cells_from_the_sheet(sheet):
    """Three hurried photos (the last with two corner markers of cell 4 covered): every cell is
    cropped within 2 px of the truth, none misplaced; cells with fewer than 3 readable corner
    markers are placed by the sheet's other markers and say so;
    the glare and the finger lower `match` only for the cells they hit."""
    layout = sheet["layout"]
    rng = np.random.default_rng(11)
    placed, accepted, cropped = set(), 0, 0
    for k in range(3):
        shot = syn.random_photo(sheet["page"], 300, layout, "hurried", rng)
        if k == 2:  # and two stickers over two corner markers of cell 4
            shot["photo"] = syn.occlude(shot["photo"], layout, shot["h"], layout.cell_points(4)[:2])
        crops, problems = align_photo(shot["photo"], layout, sheet["tag"], sheet["sizes"], AlignConfig(),
                                      references=sheet["refs"])
        assert all(c["sheet"] == 0 and c["run_tag"] == "read" for c in crops), problems
        errs = [corner_error(c, shot["h"], layout) for c in crops]
        assert max(errs) < 2.0, errs
        cropped += len(crops)
        accepted += sum(c["accepted"] for c in crops)
        placed |= {c["placed"] for c in crops}
        if k == 2:
            assert [c["placed"] for c in crops if c["slot"] == 4] == ["sheet"]
        for c in crops:
            assert c["placed"] in ("cell", "sheet") and c["placed_by"] >= (4 if c["placed"] == "sheet" else 3)
            if c["placed"] == "sheet":
                assert c["markers"] < 4
        rejected = [c for c in crops if not c["accepted"]]
        assert all(c["reason"].startswith("match") for c in rejected)  # glare or finger, nothing else
        assert len(rejected) <= 3  # the cells they hit, not the whole photo
    assert cropped >= 34 and accepted >= 30 and placed == {"cell", "sheet"}, (cropped, accepted, placed)


def test_no_false_ids_on_clutter(sheet):
    """A desk with noise and a glare spot but no sheet: no marker read, no crop."""
    rng = np.random.default_rng(3)
    desk = syn.camera(syn.glare(syn.desk((3072, 2304), rng), (1500, 1100), 300, rng), rng, blur=2.0, noise=6.0,
                      jpeg=70)
    assert detect_all(desk) == []
    crops, problems = align_photo(desk, sheet["layout"], sheet["tag"], sheet["sizes"], AlignConfig())
    assert crops == [] and len(problems) == 1 and problems[0].startswith("no markers found"), problems


def test_live_overlays_follow_the_sheet(sheet):
    """A result computed on one frame, drawn on a later frame where the sheet has moved: every
    outline is where the cell is now (within 2 px); on a frame without the sheet nothing is drawn."""
    from physical.live.overlay import cells_now

    layout = sheet["layout"]
    rng = np.random.default_rng(5)
    size = (1600, 1200)
    h_then = syn.sheet_homography(layout, 10, 190, (760, 600), (0.05, 0.0))
    h_now = syn.sheet_homography(layout, 16, 180, (860, 640), (0.02, 0.06))  # moved, turned, tilted
    frames = {k: syn.camera(syn.place(syn.desk(size, rng), sheet["page"], 300, h), rng, blur=0.8, noise=2.0, jpeg=85)
              for k, h in (("then", h_then), ("now", h_now))}
    crops, _ = align_photo(frames["then"], layout, sheet["tag"], sheet["sizes"], AlignConfig(),
                           references=sheet["refs"])
    assert len(crops) == 12
    result_cells = [{"sheet": c["sheet"], "slot": c["slot"], "quad": np.array(c["corners_px"]), "top": [],
                     "fooled": None, "role": "clean"} for c in crops]
    # drawn where the result found them, the outlines would be this far off
    stale = max(float(np.linalg.norm(c["quad"] - syn.project(h_now, layout.cell_corners(c["slot"])), axis=1).max())
                for c in result_cells)
    assert stale > 50
    now = cells_now(layout, detect_all(frames["now"], thorough=False), result_cells)
    assert len(now) == 12
    for c in now:
        err = float(np.linalg.norm(c["quad"] - syn.project(h_now, layout.cell_corners(c["slot"])), axis=1).max())
        assert err < 2.0, (c["slot"], err)
    assert cells_now(layout, detect_all(syn.desk(size, rng), thorough=False), result_cells) == []
