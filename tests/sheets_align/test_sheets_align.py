"""Sheets and alignment, on pixels: the real PDF, rasterized (pypdfium2), placed into larger photos
with known homographies (`physical.sim.posed_photos`), then blur, lighting, noise and a real JPEG.
The align stage must find every cell of this run's sheets, with its identity, and rectify it.

ENVELOPE, held by `test_envelope_*` (every cell recovered, identity right, nothing else claimed):
  - in-plane rotation over the full circle (every 30 deg, and 45 / 183 / 225 deg);
  - perspective tilt up to 0.3 per axis (`posed_photos.sheet_homography`; the near side of the page up to
    1.9x the far side on one axis, markers of one sheet from 24 to 55 px in one photo);
  - a cell 150 to 600 px wide in the photo (45 mm cells: a marker 27 to 107 px);
  - one to three sheets per photo, among them a sheet of another run with the same lattice ids;
  - gaussian blur up to sigma 1.5 px, and up to a quarter of a marker bit at the cell's nominal size
    (sigma <= cell px / 160: 0.94 px for 150 px cells, 1.5 px from 240 px), noise sigma 3 to 4
    (0..255), lighting gradient +-30 %, JPEG quality 75 to 90;
  - any one of a cell's four markers covered (each lattice point is covered in some photo).
Bounds: cell corners within CORNER_PX (1.5 px) of the truth; MAE between crop and digital image at
most MAE_BOUND (15, in 0..255 units) with both through a 1 px gaussian and after a per-channel gain
and offset fit (print and light change colours, not geometry; see `photometric_mae`); every crop at
least twice as far from any other item's image as from its own.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest

from physical.align import align_photo, read_photo, reference_images, sharpness_of, undistort
from physical.stages.align import align_stage
from physical.config import AlignConfig, Config
from physical.rundir import RunDir, read_json, write_image
from physical.sheets.cells import assign_cells
from physical.stages.printing import print_stage
from physical.sim import posed_photos as syn
from physical.sheets.layout import Layout, layout_for, run_tag
from physical.sheets.markers import detect_all, dictionary, marker_bits
from physical.sheets.pdf import write_sheets
from physical.sim.print_camera import rasterize_pdf
from tests.runs.test_bad_input import png_claiming

N_ITEMS = 8  # 16 cells: a full A4 sheet of 12 (45 mm cells, 3 x 4) and a second sheet of 4
CORNER_PX = 1.5  # largest error of a cell corner in the photo, px (measured: median 0.4, max 1.1)
MAE_BOUND = 15.0  # mean |crop - digital| (0..255), see photometric_mae (measured: mean 4-7, max 12.3)
MAE_SIGMA = 1.0  # both through this gaussian first (crop px)


def make_run(root, name: str = "t", n_items: int = N_ITEMS) -> tuple[RunDir, Config]:
    return syn.make_run(root, name, n_items)


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """This run printed (2 sheets), and a sheet of another run with the same layout and ids."""
    root = tmp_path_factory.mktemp("sheets")
    run, cfg = make_run(root)
    summary = print_stage(run, cfg)
    lay = read_json(run.root / "print" / "layout.json")
    layout = Layout.from_dict(lay["layout"])
    other_id = next(f"other-{i}" for i in range(99) if run_tag(f"other-{i}") != run_tag(run.run_id))
    cells = [{"sheet": 0, "slot": c["slot"], "image": run.root / c["image"], "label": c["label"]}
             for c in lay["cells"] if c["sheet"] == 0]
    write_sheets(root / "other.pdf", layout, cells, other_id, "another run")
    cells = {(c["sheet"], c["slot"]): c for c in lay["cells"]}
    digital = {k: read_photo(run.root / c["image"]) for k, c in cells.items()}
    refs = reference_images(run.root, cells)
    return {"run": run, "cfg": cfg, "summary": summary, "layout": layout, "tag": tuple(lay["tag"]),
            "cells": cells, "digital": digital, "refs": refs, "other_pdf": root / "other.pdf",
            "other_id": other_id, "images_px": {k: (c["width_px"], c["height_px"]) for k, c in cells.items()},
            "pages": PageCache()}


class PageCache:
    """The rasterized pages of a PDF at a dpi, rasterized once per module (the `printed` fixture's)."""

    def __init__(self):
        self.pages: dict = {}

    def __call__(self, pdf, dpi: float) -> list[np.ndarray]:
        key = (str(pdf), dpi)
        if key not in self.pages:
            self.pages[key] = list(rasterize_pdf(pdf, dpi))
        return self.pages[key]


def hidden_points(layout: Layout, offset: tuple[int, int]) -> list[int]:
    """Lattice points with (row % 2, col % 2) == offset: exactly one corner of every cell."""
    n = layout.cols + 1
    return [p for p in range(layout.lattice_points) if ((p // n) % 2, (p % n) % 2) == offset]


def compose(P, placements, rng, camera) -> tuple[np.ndarray, list[dict]]:
    """Sheets side by side in one photo: placements are dicts {pdf, page, angle, cell_px, tilt,
    hide}; returns the photo and the placements with their homography (mm -> px) added."""
    lay = P["layout"]
    homs, x, height = [], 40.0, 0.0
    for pl in placements:
        h = syn.sheet_homography(lay, pl["angle"], pl["cell_px"], (0, 0), pl["tilt"])
        q = syn.page_outline(lay, h)
        lo, hi = q.min(axis=0), q.max(axis=0)
        homs.append(np.array([[1, 0, x - lo[0]], [0, 1, 40 - lo[1]], [0, 0, 1]]) @ h)
        x += hi[0] - lo[0] + 60
        height = max(height, hi[1] - lo[1] + 80)
    size = (int(x - 20), int(height))
    photo = syn.desk(size, rng)
    out = []
    for pl, h in zip(placements, homs, strict=False):
        need = 1.3 * pl["cell_px"] / lay.cell * 25.4  # a raster finer than the photo
        dpi = next((d for d in (100.0, 150.0, 200.0) if d >= need), 300.0)
        photo = syn.place(photo, P["pages"](pl["pdf"], dpi)[pl["page"]], dpi, h)
        if pl.get("hide") is not None:
            photo = syn.occlude(photo, lay, h, hidden_points(lay, pl["hide"]))
        out.append({**pl, "h": h})
    return syn.camera(photo, rng, **camera), out


def envelope_frames(P):
    """The photos of the ENVELOPE: a rotation sweep, tilt, 150-600 px cells, 1-3 sheets each."""
    ours = P["run"].root / "print" / "sheets.pdf"
    offsets = [(0, 0), (0, 1), (1, 0), (1, 1)]
    frames = []
    for k in range(6):  # sheet 0 at 0, 60, ... 300 deg, sheet 1 at 30, 90, ... 330 deg
        cell = (150, 170, 200, 180, 160, 220)[k]
        tilt = ((0.3, 0.0), (-0.2, 0.2), (0.0, -0.3), (0.15, 0.25), (-0.3, -0.1), (0.2, -0.2))[k]
        pl = [{"pdf": ours, "page": 0, "angle": 60 * k, "cell_px": cell, "tilt": tilt, "hide": offsets[k % 4]},
              {"pdf": ours, "page": 1, "angle": 60 * k + 30, "cell_px": cell, "tilt": tilt[::-1],
               "hide": offsets[(k + 1) % 4]}]
        if k % 3 == 0:  # another run's sheet 0 beside ours: same lattice ids, another run tag
            pl.append({"pdf": P["other_pdf"], "page": 0, "angle": 60 * k + 15, "cell_px": cell, "tilt": (0, 0)})
        cam = {"blur": min(1.5, cell / 160), "noise": 3.0 + k % 2, "gradient": 0.3,
               "jpeg": (75, 80, 85, 90, 75, 80)[k]}
        frames.append((f"sweep{k}", pl, cam))
    frames.append(("close-up 600 px", [{"pdf": ours, "page": 0, "angle": 183, "cell_px": 600, "tilt": (0.05, 0.05),
                                        "hide": (1, 1)}], {"blur": 1.5, "noise": 4.0, "gradient": 0.3, "jpeg": 80}))
    frames.append(("tilted pair", [{"pdf": ours, "page": 0, "angle": 45, "cell_px": 300, "tilt": (0.25, -0.25),
                                    "hide": (0, 1)},
                                   {"pdf": ours, "page": 1, "angle": 225, "cell_px": 260, "tilt": (-0.3, 0.2),
                                    "hide": (1, 0)}], {"blur": 1.2, "noise": 3.0, "gradient": 0.3, "jpeg": 75}))
    return frames


@pytest.fixture(scope="module")
def envelope(printed):
    """Every envelope photo aligned: [(name, placements, crops, problems)]."""
    P = printed
    rng = np.random.default_rng(5)
    out = []
    for name, placements, cam in envelope_frames(P):
        photo, placed = compose(P, placements, rng, cam)
        crops, problems = align_photo(photo, P["layout"], P["tag"], P["images_px"], AlignConfig(),
                                      references=P["refs"])
        out.append((name, placed, crops, problems))
    return out


def photometric_mae(crop: np.ndarray, want: np.ndarray) -> float:
    """MAE (0..255) between crop and digital image, both through a MAE_SIGMA gaussian (what a
    photo keeps: pixel-level detail such as an FGSM pattern does not survive print and camera),
    after fitting crop ~ a * want + b per channel (least squares: print and light change colours)."""
    y, x = (cv2.GaussianBlur(v.astype(np.float32), (0, 0), MAE_SIGMA).reshape(-1, 3) for v in (crop, want))
    dx, dy = x - x.mean(axis=0), y - y.mean(axis=0)
    a = (dx * dy).sum(axis=0) / (dx * dx).sum(axis=0)
    return float((np.abs(dy - a * dx) / np.maximum(a, 1e-3)).mean())


# ----------------------------------------------------------------------------------------------
# sheets


def test_print_stage_outputs(printed):
    run, summary = printed["run"], printed["summary"]
    assert summary["sheets"] == 2 and summary["cells"] == 2 * N_ITEMS and summary["cells_per_sheet"] == 12
    assert summary["paper"] == "a4 210 x 297 mm" and summary["scale_bar_mm"] == 50
    lay = read_json(run.root / "print" / "layout.json")
    history = read_json(run.root / "print" / "history.json")  # the tag: of the run id and what the cells show
    assert lay["run_id"] == run.run_id
    assert lay["tag"] == history[-1]["tag"] == list(run_tag(run.run_id, history[-1]["content"]))
    assert lay["n_sheets"] == 2 and lay["pdf"] == "print/sheets.pdf"
    cells = lay["cells"]
    assert [(c["sheet"], c["slot"], c["role"]) for c in cells[:4]] == [(0, 0, "clean"), (0, 1, "adv"),
                                                                      (0, 2, "clean"), (0, 5, "adv")]
    assert cells[1]["item"] == "m/fgsm/16/img0" and cells[1]["label"] == "fgsm eps16 img0 adv"
    assert all(c["width_px"] == 224 and c["height_px"] == 224 for c in cells)
    prints = run.root.parent.parent / "prints" / "t.pdf"
    assert prints.is_file() and prints.read_bytes() == (run.root / "print" / "sheets.pdf").read_bytes()


@pytest.mark.parametrize("paper,w,h,cell", [("a4", 210, 297, 45), ("letter", 215.9, 279.4, 45),
                                            ("custom", 300, 200, 40), ("custom", 150, 220, 60), ("a4", 210, 297, 30)])
def test_pairs_sit_side_by_side(paper, w, h, cell):
    sc = Config().sheet
    sc.paper, sc.width_mm, sc.height_mm, sc.cell_mm = paper, w, h, cell
    lay = layout_for(sc)
    pairs = lay.pair_slots()
    assert lay.cells_per_sheet == 2 * len(pairs) >= lay.cols * lay.rows - 1
    used = [s for p in pairs for s in p]
    assert len(set(used)) == len(used) and all(0 <= s < lay.cols * lay.rows for s in used)
    for a, b in pairs:
        (ra, ca), (rb, cb) = lay.cell_rc(a), lay.cell_rc(b)
        if lay.cols % 2 == 0 or ca < lay.cols - 1:
            assert (rb, cb) == (ra, ca + 1)  # side by side, clean on the left, never across a row end
        else:
            assert (rb, cb) == (ra + 1, ca)  # the odd last column: one above the other
    items = [{"key": f"i{k}", "clean": "c.png", "adv": "a.png"} for k in range(len(pairs) + 1)]
    cells = assign_cells(items, lay)
    by_item = {}
    for c in cells:
        by_item.setdefault(c["item"], {})[c["role"]] = (c["sheet"], c["slot"])
    assert all((v["clean"][0], v["clean"][1], v["adv"][1]) in {(v["clean"][0], *p) for p in pairs}
               for v in by_item.values())
    assert by_item[f"i{len(pairs)}"]["clean"] == (1, pairs[0][0])  # a new sheet when full


def test_too_many_sheets_is_a_clear_error():
    lay = layout_for(Config().sheet)
    n = lay.max_sheets * lay.cells_per_sheet // 2 + 1
    items = [{"key": str(i), "clean": "c.png", "adv": "a.png"} for i in range(n)]
    with pytest.raises(ValueError, match=f"at most {lay.max_sheets} sheets"):
        assign_cells(items, lay)
    assert len(assign_cells(items[:-1], lay)) == 2 * (n - 1)


@pytest.mark.parametrize("paper,w,h", [("a4", 210, 297), ("letter", 215.9, 279.4), ("custom", 250, 180)])
def test_pdf_size_margins_and_native_images(printed, tmp_path, paper, w, h):
    """Page size, nothing inked in the margin, every image embedded at its native pixels (the
    very pixels of the PNG) and drawn at exactly the cell size."""
    sc = Config().sheet
    sc.paper, sc.width_mm, sc.height_mm, sc.margin_mm = paper, w, h, 12
    lay = layout_for(sc)
    run = printed["run"]
    src = sorted(printed["cells"].values(), key=lambda c: (c["sheet"], c["slot"]))
    cells = [{"sheet": 0, "slot": s, "image": run.root / c["image"], "label": c["label"]}
             for s, c in zip(range(lay.cells_per_sheet), src, strict=False)]
    write_sheets(tmp_path / "s.pdf", lay, cells, "r1", "t")
    doc = pdfium.PdfDocument(str(tmp_path / "s.pdf"))
    try:
        page = doc[0]
        assert page.get_size() == pytest.approx((w / 25.4 * 72, h / 25.4 * 72), abs=0.01)
        images = [o for o in page.get_objects() if o.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE]
        assert len(images) == len(cells)
        for o, c in zip(images, cells, strict=False):
            assert o.get_px_size() == (224, 224)
            m = o.get_matrix()
            assert (m.a, m.d) == pytest.approx((lay.cell / 25.4 * 72,) * 2, abs=1e-3) and m.b == m.c == 0
            x, y, _, _ = lay.cell_rect(c["slot"])
            assert (m.e, m.f) == pytest.approx((x / 25.4 * 72, (h - y - lay.cell) / 25.4 * 72), abs=1e-3)
            raw = o.get_bitmap(render=False).to_numpy()[..., 2::-1]  # pdfium's BGR
            assert np.array_equal(raw, read_photo(c["image"]))  # lossless, not resampled
    finally:
        doc.close()
    grey = cv2.cvtColor(next(rasterize_pdf(tmp_path / "s.pdf", 100)), cv2.COLOR_RGB2GRAY)
    m = int(12 / 25.4 * 100) - 1
    for band in (grey[:m], grey[-m:], grey[:, :m], grey[:, -m:]):
        assert band.min() >= 250  # the printer's non-printable border stays blank


def test_pdf_caption_scale_bar_and_colour_strip(printed):
    run, lay = printed["run"], printed["layout"]
    doc = pdfium.PdfDocument(str(run.root / "print" / "sheets.pdf"))
    try:
        text = doc[1].get_textpage().get_text_range()
    finally:
        doc.close()
    assert f"run {run.run_id}" in text and "sheet 2 of 2" in text and "cell 45 mm" in text
    assert "Print at 100 % / actual size" in text and "must measure 50 mm" in text
    dpi = 200
    page = printed["pages"](run.root / "print" / "sheets.pdf", dpi)[0]
    k = dpi / 25.4
    # the scale bar: a dark line 50 mm long in the caption band
    band = cv2.cvtColor(page[int(lay.margin * k): int((lay.margin + 16) * k)], cv2.COLOR_RGB2GRAY) < 128
    rows = band.sum(axis=1)
    r = int(np.argmax(rows))
    run_px = np.flatnonzero(band[r])
    longest = max(np.split(run_px, np.flatnonzero(np.diff(run_px) > 1) + 1), key=len)
    assert len(longest) == pytest.approx((50 + 0.35) * k, abs=1.5)  # the end ticks (0.35 mm) are centred on 0 and 50
    # the colour strip: grey ramp black -> white, then red, green, blue, cyan, magenta, yellow
    x, y, w, h = lay.strip_rect()
    pw = w / 18
    centre = lambda i: page[int((y + h / 2) * k), int((x + (i + 0.5) * pw) * k)].astype(int)  # noqa: E731
    greys = [centre(i) for i in range(11)]
    assert all(abs(g[0] - round(255 * i / 10)) <= 2 and np.ptp(g) <= 2 for i, g in enumerate(greys))
    want = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (255, 255, 0)]
    assert all(np.abs(centre(12 + i) - np.array(c)).max() <= 2 for i, c in enumerate(want))


def test_markers_on_the_page(printed):
    """Every lattice marker of the sheet and the 8 run tag markers at the page's corners."""
    run, lay = printed["run"], printed["layout"]
    page = printed["pages"](run.root / "print" / "sheets.pdf", 150)[1]
    found = detect_all(page)
    k = 150 / 25.4
    lattice = {m.id for m in found if m.id < 600}
    assert lattice == {lay.marker_id(1, p) for p in range(lay.lattice_points)}
    tags = [((m.corners.mean(axis=0) + 0.5) / k, m.id) for m in found if m.id >= 600]
    assert len(tags) == 8
    for centre, i in lay.tag_positions():  # every tag place holds the right id of the pair
        assert any(mid == printed["tag"][i] and np.abs(c - centre).max() < 0.3 for c, mid in tags)
    assert all(m.score > 0.9 for m in found)
    bits = marker_bits(7)
    assert bits.shape == (7, 7) and bits[0].all() and bits[:, 0].all() and not bits[1:-1, 1:-1].all()


# ----------------------------------------------------------------------------------------------
# the envelope


def test_envelope_every_cell_recovered_with_its_identity(printed, envelope):
    P = printed
    hidden = {0: set(), 1: set()}
    for name, placed, crops, problems in envelope:
        ours = [p for p in placed if p["pdf"] != P["other_pdf"]]
        want = {(p["page"], s) for p in ours for (sh, s) in P["cells"] if sh == p["page"]}
        got = [(c["sheet"], c["slot"]) for c in crops]
        assert sorted(got) == sorted(want), (name, problems)
        assert all(c["accepted"] for c in crops), (name, [c["reason"] for c in crops if not c["accepted"]])
        assert all(c["markers"] == 3 for c in crops)  # one marker of every cell was covered
        if len(ours) < len(placed):  # the other run's sheet 0: seen, named and ignored
            assert any(p.startswith("sheet 0: a sheet of another run") for p in problems), (name, problems)
        for p in ours:
            hidden[p["page"]] |= set(hidden_points(P["layout"], p["hide"]))
    assert all(h == set(range(P["layout"].lattice_points)) for h in hidden.values())  # each point covered once


def test_envelope_geometry_and_pixels(printed, envelope):
    P = printed
    maes, corner_err = [], []
    for name, placed, crops, _problems in envelope:
        by_sheet = {p["page"]: p for p in placed if p["pdf"] != P["other_pdf"]}
        for c in crops:
            truth = syn.project(by_sheet[c["sheet"]]["h"], P["layout"].cell_corners(c["slot"]))
            err = float(np.linalg.norm(np.array(c["corners_px"]) - truth, axis=1).max())
            corner_err.append(err)
            assert err < CORNER_PX, (name, c["sheet"], c["slot"], err)
            key = (c["sheet"], c["slot"])
            mae = photometric_mae(c["image"], P["digital"][key])
            maes.append(mae)
            assert mae < MAE_BOUND, (name, key, mae)
            others = [photometric_mae(c["image"], P["digital"][k]) for k, cell in P["cells"].items()
                      if cell["item"] != P["cells"][key]["item"] and cell["role"] == "clean" and k[0] == 0]
            assert min(others) > 2 * mae, (name, key, mae, min(others))
            assert c["reprojection_px"] < 1.0 and c["inside"] == 1.0 and 0.1 < c["sharpness"] < 1.2
    print(f"\nenvelope: {len(maes)} crops; corner error max {max(corner_err):.2f} px; "
          f"MAE after gain/offset mean {np.mean(maes):.1f}, max {max(maes):.1f}")


# ----------------------------------------------------------------------------------------------
# run tags, other runs, other tools


def _one_sheet(P, rng, hide_tags=(), page=0, pdf=None, cell_px=200, angle=20):
    pl = {"pdf": pdf or P["run"].root / "print" / "sheets.pdf", "page": page, "angle": angle, "cell_px": cell_px,
          "tilt": (0.1, 0.05)}
    photo, (placed,) = compose(P, [pl], rng, {"blur": 0.8, "noise": 3.0, "jpeg": 90})
    lay = P["layout"]
    for i in hide_tags:  # paint over run tag markers
        centre, _ = lay.tag_positions()[i]
        sq = syn.project(placed["h"], Layout.square(centre, lay.marker + 1))
        cv2.fillConvexPoly(photo, np.round(sq).astype(np.int32), (235, 235, 235))
    return photo, placed


def _align(P, photo, **kw):
    return align_photo(photo, P["layout"], P["tag"], P["images_px"], AlignConfig(), references=P["refs"], **kw)


def test_run_tag_policy(printed):
    P = printed
    rng = np.random.default_rng(7)
    # three corners covered: one tag pair is enough
    crops, problems = _align(P, _one_sheet(P, rng, hide_tags=range(6))[0])
    assert len(crops) == 12 and all(c["accepted"] and c["run_tag"] == "read" for c in crops)
    # every tag covered: the run cannot be told from this photo alone, so no crop is accepted here
    crops, problems = _align(P, _one_sheet(P, rng, hide_tags=range(8))[0])
    assert len(crops) == 12 and not any(c["accepted"] for c in crops)
    assert all(c["run_tag"] == "none" and c["reason"] == "run tag not visible in this photo" for c in crops)
    assert any(p.startswith("sheet 0: run tag not visible") for p in problems)
    # only the first id of the pair visible
    crops, problems = _align(P, _one_sheet(P, rng, hide_tags=[1, 3, 5, 7])[0])
    assert len(crops) == 12 and not any(c["accepted"] for c in crops) and all(c["run_tag"] == "half" for c in crops)
    # another run's sheet, even with three corners covered, is not mistaken for ours
    photo, _ = _one_sheet(P, rng, hide_tags=range(2, 8), pdf=P["other_pdf"])
    crops, problems = _align(P, photo, other_runs={run_tag(P["other_id"]): "'other' (runs/other)"})
    assert crops == [] and problems == ["sheet 0: a sheet of run 'other' (runs/other), not of this run; ignored"]


def test_one_misread_tag_marker_is_outvoted(printed):
    """A blurred, compressed photo can make ArUco read a tag marker as a neighbouring id; one such
    place among the eight must not turn this run's sheet into another run's."""
    P = printed
    photo, placed = _one_sheet(P, np.random.default_rng(11))
    lay, tag = P["layout"], P["tag"]
    for place, wrong in ((0, tag[0] + 1), (3, tag[1] - 1)):  # one misread place per id of the pair
        side = 140
        marker = cv2.aruco.generateImageMarker(dictionary(), int(wrong), side)
        src = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float32) - 0.5
        dst = syn.project(placed["h"], Layout.square(lay.tag_positions()[place][0], lay.marker)).astype(np.float32)
        hw = photo.shape[1::-1]
        warped = cv2.warpPerspective(marker, cv2.getPerspectiveTransform(src, dst), hw, borderValue=0)
        mask = cv2.warpPerspective(np.full_like(marker, 255), cv2.getPerspectiveTransform(src, dst), hw) > 127
        photo[mask] = warped[mask, None]
    assert {m.id for m in detect_all(photo)} >= {tag[0] + 1, tag[1] - 1}  # the wrong ids are read
    crops, problems = _align(P, photo)
    assert len(crops) == 12 and all(c["accepted"] and c["run_tag"] == "read" for c in crops), problems


def test_markers_of_other_tools_are_ignored(printed):
    """A ChArUco board and loose markers of the same dictionary (ids that collide with the lattice)."""
    P = printed
    rng = np.random.default_rng(8)
    photo, placed = _one_sheet(P, rng, cell_px=170, angle=-15)
    h, w = photo.shape[:2]
    board = cv2.aruco.CharucoBoard((6, 4), 0.04, 0.03, dictionary())
    img = cv2.cvtColor(board.generateImage((600, 400), marginSize=20), cv2.COLOR_GRAY2RGB)
    loose = [cv2.copyMakeBorder(cv2.aruco.generateImageMarker(dictionary(), i, 70), 12, 12, 12, 12,
                                cv2.BORDER_CONSTANT, value=255) for i in (0, 1, 5, 12, 650, 900)]
    canvas = np.full((h + 520, w, 3), 90, np.uint8)
    canvas[:h] = photo
    canvas[h + 40: h + 480, 40:680] = cv2.resize(img, (640, 440))
    for k, m in enumerate(loose):
        y, x = h + 60 + (k // 3) * 110, 760 + (k % 3) * 110
        canvas[y:y + 94, x:x + 94] = cv2.cvtColor(m, cv2.COLOR_GRAY2RGB)
    crops, problems = _align(P, canvas)
    assert sorted(c["slot"] for c in crops) == list(range(12)) and all(c["sheet"] == 0 for c in crops)
    assert all(c["accepted"] for c in crops)
    truth_x = syn.page_outline(P["layout"], placed["h"])[:, 0]
    assert all(np.array(c["corners_px"])[:, 1].max() < h for c in crops) and truth_x.min() > 0


def test_two_copies_of_one_sheet_and_cut_off_cells(printed):
    P = printed
    rng = np.random.default_rng(9)
    ours = P["run"].root / "print" / "sheets.pdf"
    photo, placed = compose(P, [{"pdf": ours, "page": 0, "angle": 90, "cell_px": 170, "tilt": (0, 0)},
                                {"pdf": ours, "page": 0, "angle": 0, "cell_px": 160, "tilt": (0, 0)}], rng,
                            {"blur": 0.7, "noise": 2.0, "jpeg": 90})
    crops, problems = _align(P, photo)
    assert len(crops) == 12 and "sheet 0: a second copy of this sheet in the photo; ignored" in problems
    # the right part of a sheet outside the photo: its right column of cells is missing, not guessed
    lay = P["layout"]
    photo, (pl,) = compose(P, [{"pdf": ours, "page": 0, "angle": 0, "cell_px": 200, "tilt": (0, 0)}], rng,
                           {"blur": 0.7, "noise": 2.0, "jpeg": 90})
    x_cut = int(syn.project(pl["h"], [[lay.cell_rect(2)[0] + 20, 0]])[0, 0])
    crops, problems = _align(P, np.ascontiguousarray(photo[:, :x_cut]))
    got = {c["slot"]: c for c in crops}
    assert set(got) == set(range(12)) - {2, 5, 8, 11}
    for s in (2, 5, 8, 11):
        assert any(p.startswith(f"sheet 0 cell {s}: 2 of 4 corner markers found") for p in problems)


def test_a_covered_image_is_excluded(printed):
    """A thumb over a third of one image (its markers all visible): that crop is found but not
    used (match < align.min_match), its neighbours are."""
    P = printed
    photo, placed = _one_sheet(P, np.random.default_rng(10), cell_px=240)
    x, y, w, h = P["layout"].cell_rect(4)
    q = syn.project(placed["h"], [[x, y], [x + w / 3, y], [x + w / 3, y + h], [x, y + h]])
    cv2.fillConvexPoly(photo, np.round(q).astype(np.int32), (205, 160, 140))
    crops, _ = _align(P, photo)
    by_slot = {c["slot"]: c for c in crops}
    assert len(crops) == 12 and [s for s, c in by_slot.items() if not c["accepted"]] == [4]
    assert by_slot[4]["reason"].startswith("match 0.") and by_slot[4]["match"] < 0.5
    assert min(c["match"] for s, c in by_slot.items() if s != 4) > 0.9


def test_sharpness_is_detail_kept_not_noise(printed):
    P = printed
    key = (0, 0)
    want = P["digital"][key]
    ref = P["refs"][key]
    assert sharpness_of(want, ref) == pytest.approx(1.0, abs=0.005)
    blurred = [sharpness_of(cv2.GaussianBlur(want, (0, 0), s), ref) for s in (0.5, 1.0, 2.0)]
    assert blurred[0] > blurred[1] > blurred[2]
    rng = np.random.default_rng(0)
    noisy = np.clip(cv2.GaussianBlur(want, (0, 0), 1.0) + rng.normal(0, 12, want.shape), 0, 255).astype(np.uint8)
    assert sharpness_of(noisy, ref) == pytest.approx(blurred[1], abs=0.05)  # noise is not detail


# ----------------------------------------------------------------------------------------------
# the stage


def test_align_stage_end_to_end(printed, tmp_path, capsys):
    P = printed
    run, cfg, lay = P["run"], P["cfg"], P["layout"]
    ours = run.root / "print" / "sheets.pdf"
    photos = run.photos_dir
    for old in photos.iterdir():
        old.unlink()
    rng = np.random.default_rng(11)
    both, _ = compose(P, [{"pdf": ours, "page": 0, "angle": 170, "cell_px": 260, "tilt": (0.1, 0.1)},
                          {"pdf": ours, "page": 1, "angle": 280, "cell_px": 260, "tilt": (0, 0)}], rng,
                      {"blur": 0.8, "noise": 3.0, "gradient": 0.2})
    write_image(photos / "IMG_2041.JPG", both, quality=90)
    blurry, _ = compose(P, [{"pdf": ours, "page": 0, "angle": 10, "cell_px": 260, "tilt": (0, 0)}], rng,
                        {"blur": 2.5, "noise": 3.0})
    write_image(photos / "photo (2).jpeg", blurry, quality=90)
    # a close-up of sheet 1's cells: no run tag in the photo, the sheet is proven by IMG_2041
    close, (pl,) = compose(P, [{"pdf": ours, "page": 1, "angle": 0, "cell_px": 400, "tilt": (0, 0)}], rng,
                           {"blur": 0.8, "noise": 2.0})
    (x0, y0), (x1, y1) = syn.project(pl["h"], [[lay.grid_x - 2, lay.grid_y - 2],
                                              [lay.grid_x + 2 * lay.pitch + lay.gutter + 2,
                                               lay.grid_y + lay.pitch + lay.gutter + 2]]).astype(int)
    write_image(photos / "DSC00017.JPG", close[y0:y1, x0:x1], quality=92)
    # another run's sheet 0 with other images, every tag covered: not taken for ours
    cells = [{"sheet": 0, "slot": s, "image": run.root / c["image"], "label": ""}
             for s, c in zip(range(12), sorted(P["cells"].values(), key=lambda c: -c["slot"]), strict=False)]
    write_sheets(tmp_path / "other2.pdf", lay, cells, "yet-another-run", "x")
    tagless, _ = _one_sheet(P, rng, hide_tags=range(8), pdf=tmp_path / "other2.pdf")
    write_image(photos / "tagless.jpg", tagless, quality=90)
    h = syn.fit_in_frame(lay, 10, 160, (0, 0), (1400, 1400), rng)
    page = np.full((int(lay.page_h * 4), int(lay.page_w * 4), 3), 245, np.uint8)  # a blank page at 101.6 dpi
    write_image(photos / "blank.jpg", syn.camera(syn.place(syn.desk((1400, 1400), rng), page, 101.6, h), rng,
                                                 blur=0.8, noise=3.0), quality=90)
    other, _ = compose(P, [{"pdf": P["other_pdf"], "page": 0, "angle": 30, "cell_px": 200, "tilt": (0, 0)}], rng,
                       {"blur": 0.8})
    write_image(photos / "other_run.png", other)
    good = (photos / "IMG_2041.JPG").read_bytes()
    (photos / "broken.jpg").write_bytes(good[: len(good) // 2])
    (photos / "notes.jpg").write_text("not a photo")
    (photos / "huge.png").write_bytes(png_claiming(100_000, 100_000))  # OpenCV raised on it: the stage failed
    (photos / "sheets.pdf").write_bytes(P["other_pdf"].read_bytes())

    cfg.align.min_sharpness = 0.2
    try:
        res = align_stage(run, cfg)
    finally:
        cfg.align.min_sharpness = 0.0
    out = capsys.readouterr().out
    assert res == {"photos": 10, "skipped": 6, "cells_found": 16, "cells_expected": 16, "crops": 42,
                   "crops_excluded": 24, "other_print": 0}
    crops = read_json(run.root / "align" / "crops.json")
    status = {p["photo"]: p for p in crops["photos"]}
    reasons = {k: v["reason"] for k, v in status.items() if v["status"] == "skipped"}
    assert reasons["blank.jpg"].startswith("no markers found"), reasons
    assert "truncated" in reasons["broken.jpg"] and reasons["notes.jpg"] == "not an image file"
    assert reasons["huge.png"].startswith("its header claims 10,000 megapixels")
    assert reasons["other_run.png"].startswith("sheet 0: a sheet of another run")
    assert reasons["sheets.pdf"] == f"a PDF (the printed sheets of run {P['other_id']}), not a photo; print it " \
                                    "and photograph the paper"
    for name, why in reasons.items():  # one line per skipped photo, naming it and the reason
        assert f"align: skipped {name}: {why}" in out
    assert "align: tagless.jpg: sheet 0: run tag not visible" in out
    assert status["IMG_2041.JPG"]["sheets"] == [0, 1] and status["IMG_2041.JPG"]["cells"] == 16
    assert crops["missing"] == [] and crops["excluded"] == {"sharpness": 24, "run tag": 12, "match": 12}
    assert "24 of 42 crops excluded by the align thresholds: 12 by match, 12 by run tag, 24 by sharpness" in out
    by_photo = {}
    for c in crops["crops"]:
        by_photo.setdefault(c["photo"], []).append(c)
    assert all(not c["accepted"] and c["reason"].startswith("sharpness") for c in by_photo["photo (2).jpeg"])
    close = by_photo["DSC00017.JPG"]  # accepted on the tag IMG_2041 shows, and on their content
    assert sorted(c["slot"] for c in close) == [0, 1] and all(c["accepted"] and c["run_tag"] == "none" for c in close)
    assert all(c["match"] > 0.9 for c in close)
    why = "run tag not visible in this photo, and the cell does not show its printed image"
    assert all(not c["accepted"] and c["reason"].startswith(why) for c in by_photo["tagless.jpg"])
    best = {(c["sheet"], c["slot"]): c for c in crops["crops"] if c["best"]}
    assert len(best) == 16 and all(c["accepted"] for c in best.values())
    assert {c["photo"] for c in best.values()} == {"IMG_2041.JPG", "DSC00017.JPG"}  # the sharpest per cell
    for c in best.values():
        cell = P["cells"][(c["sheet"], c["slot"])]
        assert (c["item"], c["role"]) == (cell["item"], cell["role"])
        crop = read_photo(run.root / c["path"])
        assert crop.shape == (224, 224, 3) and photometric_mae(crop, P["digital"][(c["sheet"], c["slot"])]) < MAE_BOUND
    # without the photo that proves sheet 1, the close-up counts for nothing
    (photos / "IMG_2041.JPG").unlink()
    align_stage(run, cfg)
    crops = read_json(run.root / "align" / "crops.json")
    close = [c for c in crops["crops"] if c["photo"] == "DSC00017.JPG"]
    unproven = "run tag not visible in this photo nor in any other photo of this sheet"
    assert len(close) == 2 and all(c["reason"] == unproven for c in close)
    assert {(m["sheet"], m["slot"]) for m in crops["missing"]} >= {(1, 0), (1, 1), (1, 2), (1, 5)}


def test_read_photo_and_undistort(tmp_path):
    img = syn.cell_images(1)[0][0]
    write_image(tmp_path / "a.jpg", img, quality=95)
    assert read_photo(tmp_path / "a.jpg").shape == (224, 224, 3)
    (tmp_path / "b.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:500])
    with pytest.raises(ValueError, match="b.jpg: corrupt or truncated"):
        read_photo(tmp_path / "b.jpg")
    (tmp_path / "c.pdf").write_bytes(b"%PDF-1.4 not much")
    with pytest.raises(ValueError, match="c.pdf: a PDF, not a photo"):
        read_photo(tmp_path / "c.pdf")
    cal = tmp_path / "cam.json"
    cal.write_text(json.dumps({"camera_matrix": [[300, 0, 111.5], [0, 300, 111.5], [0, 0, 1]],
                               "dist_coeffs": [0, 0, 0, 0, 0]}))
    assert np.abs(undistort(img, cal).astype(int) - img).mean() < 1.0


def test_undistortion_before_alignment(printed, tmp_path):
    """A photo through a lens with barrel distortion: aligned as well as a straight one once the
    camera calibration is given (align.camera_calibration)."""
    P = printed
    rng = np.random.default_rng(12)
    photo, placed = _one_sheet(P, rng, cell_px=220, angle=5)
    h, w = photo.shape[:2]
    k = np.array([[1.0 * w, 0, (w - 1) / 2], [0, 1.0 * w, (h - 1) / 2], [0, 0, 1]])
    dist = np.array([-0.25, 0.08, 0, 0, 0])
    # distort: for every distorted pixel, where it comes from in the straight photo
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    pts = cv2.undistortPoints(np.stack([u.ravel(), v.ravel()], 1).reshape(-1, 1, 2), k, dist, P=k).reshape(h, w, 2)
    bent = cv2.remap(photo, pts[..., 0], pts[..., 1], cv2.INTER_LINEAR, borderValue=(90, 90, 90))
    cal = tmp_path / "camera.json"
    cal.write_text(json.dumps({"camera_matrix": k.tolist(), "dist_coeffs": dist.tolist(), "image_size": [w, h]}))
    straight = undistort(bent, cal)
    crops_bent, _ = _align(P, bent)
    crops, _ = _align(P, straight)
    assert len(crops) == 12
    err = max(np.linalg.norm(np.array(c["corners_px"]) - syn.project(placed["h"], P["layout"].cell_corners(c["slot"])),
                             axis=1).max() for c in crops)
    assert err < 1.5
    assert np.mean([c["reprojection_px"] for c in crops]) < np.mean([c["reprojection_px"] for c in crops_bent])


def test_crop_rejections_are_codes_with_text():
    """Why a crop is not used is kept as codes (counted by the summary) with the sentence shown to the user."""
    from physical.align.one_photo import judge, rejection
    from physical.stages.align import _exclusions, _judge_unread_tags

    def crop(sheet, tag, *rej, match=0.9):
        c = {"sheet": sheet, "run_tag": tag, "match": match, "rejections": list(rej)}
        judge(c)
        return c

    unread = rejection("run_tag", "run tag not visible in this photo")
    crops = [crop(0, "read"), crop(0, "none", unread),
             crop(1, "none", unread, rejection("inside", "inside 0.50 < 0.98")),
             crop(0, "half", rejection("run_tag", "run tag only half readable in this photo"), match=0.1)]
    assert crops[0]["accepted"] and crops[0]["reason"] == "ok" and not crops[1]["accepted"]
    _judge_unread_tags(crops)
    assert crops[1]["accepted"]  # sheet 0 is proven by another photo, and the cell shows its image
    assert crops[2]["reason"] == ("run tag not visible in this photo nor in any other photo of this sheet; "
                                  "inside 0.50 < 0.98")
    assert [r["code"] for r in crops[3]["rejections"]] == ["run_tag"] and "match 0.10" in crops[3]["reason"]
    assert _exclusions(crops) == {"run tag": 2, "inside": 1}
