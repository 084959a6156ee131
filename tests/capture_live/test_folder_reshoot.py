"""After a folder capture, align names the cells with no accepted crop, by sheet and with the
cause (glare, finger, not found ...), and the sheets to photograph again; `physical capture` with a
folder of new photos keeps the earlier ones, and align uses each cell's best crop of them all."""
from __future__ import annotations

import cv2
import numpy as np

from physical.cli.main import main
from physical.rundir import read_json
from physical.stages.align import align_stage
from physical.stages.printing import print_stage
from physical.sim import posed_photos as syn
from physical.sheets.layout import Layout
from physical.sim.print_camera import rasterize_pdf

SIZE = (2400, 1800)


def photo(page: np.ndarray, layout: Layout, seed: int, glare_on: int | None = None,
          finger_on: int | None = None) -> bytes:
    """A fair JPEG of one page, with a glare spot over cell `glare_on` and a finger over cell `finger_on`."""
    rng = np.random.default_rng(seed)
    h = syn.fit_in_frame(layout, 4.0 * seed, 190.0, (0.05, -0.03), SIZE, rng)
    assert h is not None
    px = syn.desk(SIZE, rng)
    px = syn.place(px, page, 300, h)
    mm_px = 190.0 / layout.cell
    if finger_on is not None:  # from below the page, its tip past the cell's middle
        tip, rim = syn.project(h, [np.mean(layout.cell_corners(finger_on), axis=0) - [0, 12], [0, layout.page_h]])
        px = syn.finger(px, tip, float(np.arctan2(*(rim - tip)[::-1])), 30 * mm_px, 200 * mm_px)
    if glare_on is not None:
        centre = syn.project(h, [np.mean(layout.cell_corners(glare_on), axis=0)])[0]
        px = syn.glare(px, centre, 30 * mm_px, rng)
    px = syn.camera(px, rng, blur=0.7, noise=2.0, gradient=0.1)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(px, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return buf.tobytes()


def test_folder_capture_names_what_to_reshoot_and_keeps_the_best_crop(tmp_path, capsys):
    run, cfg = syn.make_run(tmp_path, "reshoot", 12)  # 2 sheets of 12 cells
    print_stage(run, cfg)
    run.mark("print", "done")
    layout = Layout.from_dict(read_json(run.root / "print" / "layout.json")["layout"])
    pages = list(rasterize_pdf(run.root / "print" / "sheets.pdf", 300))
    first = tmp_path / "phone1"
    first.mkdir()
    (first / "IMG_0001.JPG").write_bytes(photo(pages[0], layout, 1, glare_on=4, finger_on=9))
    assert main(["capture", str(run.root), "--source", f"folder:{first}"]) == 0
    capsys.readouterr()
    align_stage(run, cfg)
    out = capsys.readouterr().out
    missing = read_json(run.root / "align" / "crops.json")["missing"]
    causes = {(m["sheet"], m["slot"]): m["cause"] for m in missing}
    assert causes[(0, 4)] == "glare" and causes[(0, 9)] == "finger", causes
    assert all(causes[(1, s)] == "not found" for s in range(12)) and len(causes) == 14, causes
    assert "align: sheet 0: 2 cell(s) with no accepted crop: glare: cell(s) 4; finger: cell(s) 9" in out, out
    assert "align: sheet 1: 12 cell(s) with no accepted crop: not found: cell(s) 0, 1, 2, 3, 4, 5, 6" in out
    assert "align: photograph sheet(s) 0, 1 again (" in out and f"physical capture {run.root} --source folder:" in out

    # the new photos in another folder (a phone numbering from 1 again): the first photo stays
    second = tmp_path / "phone2"
    second.mkdir()
    (second / "IMG_0001.JPG").write_bytes(photo(pages[0], layout, 2))
    (second / "IMG_0002.JPG").write_bytes(photo(pages[1], layout, 3))
    assert main(["capture", str(run.root), "--source", f"folder:{second}"]) == 0
    assert "2 new photo(s) added to the 1 of earlier folder captures" in capsys.readouterr().out
    assert sorted(p.name for p in run.photos_dir.iterdir()) == ["IMG_0001-2.JPG", "IMG_0001.JPG", "IMG_0002.JPG"]
    assert (run.photos_dir / "IMG_0001.JPG").read_bytes() == (first / "IMG_0001.JPG").read_bytes()
    align_stage(run, cfg)
    crops = read_json(run.root / "align" / "crops.json")
    assert crops["missing"] == []
    best = {(c["sheet"], c["slot"]): c["photo"] for c in crops["crops"] if c["best"]}
    assert best[(0, 4)] == best[(0, 9)] == "IMG_0001-2.JPG" and len(best) == 24
    assert "photograph sheet(s)" not in capsys.readouterr().out
    # the same folder again: nothing is copied twice
    assert main(["capture", str(run.root), "--source", f"folder:{second}"]) == 0
    assert len(list(run.photos_dir.iterdir())) == 3


def test_the_report_page_lists_the_missing_cells_with_their_cause():
    from physical.report.html import render_html

    missing = [{"sheet": 0, "slot": 4, "item": "m/x", "role": "clean", "reason": "rejected: match", "cause": "glare"},
               {"sheet": 2, "slot": 0, "item": "m/y", "role": "adversarial", "reason": "not found in any photo",
                "cause": "not found"},
               {"sheet": 2, "slot": 1, "item": "m/y", "role": "clean", "reason": "not found in any photo"}]  # older
    report = {"run_id": "r", "name": "t", "kurakin": [], "labels": {"unlabelled_images": [], "note": None},
              "comparisons": {"rows": [], "note": ""}, "images": [],
              "align": {"photos": 1, "photos_skipped": [], "cells_missing": missing, "crops_excluded": []}}
    page = render_html(report, [], [])
    assert "3 cell(s) with no accepted crop in any photo" in page
    assert '<td>0</td><td>4</td><td class="l">m/x</td><td class="l">clean</td><td class="l">glare</td>' in page
    assert '<td class="l">adversarial</td><td class="l">not found</td>' in page
    assert "Photograph sheet(s) 0, 2 again and run <code>physical capture RUN --source folder:FOLDER</code>" in page
