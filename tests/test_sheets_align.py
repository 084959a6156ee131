"""Print stage and align stage on pixels: PDF -> rasterized page -> synthetic photo -> crops.

The photos are made here with a known homography (rotation, perspective), mild blur, noise and
JPEG, so the test needs neither the simulator nor a camera.
"""
from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest

from physical.align import align_photo, align_stage, read_photo, undistort
from physical.config import AlignConfig, Config
from physical.rundir import RunDir, read_json, write_image
from physical.sheets import assign_cells, print_stage
from physical.sheets.layout import layout_for, run_tag
from physical.sheets.markers import detect_markers, marker_bits
from physical.sheets.pdf import write_sheets

DPI = 150
N_ITEMS = 5  # 10 cells: one full sheet of 6 and a second sheet of 4 (A4, 45 mm cells)
MAE_BOUND = 8.0  # mean |crop - digital| in 0..255 units, nothing compensated (measured 2.5-4)


def pattern(k: int, size: int = 224) -> np.ndarray:
    """A distinct, smooth-ish 8-bit RGB test image (values 30..225): gradients plus waves."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    a = 0.4 + 0.25 * k
    wave = np.sin(2 * np.pi * (3 + k % 4) * (xx * np.cos(a) + yy * np.sin(a)))
    base = 0.5 + 0.25 * np.cos(2.4 * k + np.array([0.0, 2.1, 4.2]))  # a colour of its own
    r = base[0] + 0.25 * wave * (1 - yy) + 0.2 * (xx - 0.5)
    g = base[1] + 0.3 * (yy - 0.5) * np.cos(k) + 0.2 * wave * xx
    b = base[2] + 0.3 * (0.5 - xx) * np.sin(k + 1) + 0.15 * np.sign(wave) * yy
    img = np.stack([r, g, b], -1)
    return np.clip(30 + 195 * img, 30, 225).astype(np.uint8)


def render(pdf_path, dpi: float = DPI) -> list[np.ndarray]:
    doc = pdfium.PdfDocument(str(pdf_path))
    try:
        return [cv2.cvtColor(doc[i].render(scale=dpi / 72).to_numpy(), cv2.COLOR_BGR2RGB) for i in range(len(doc))]
    finally:
        doc.close()


def photograph(page: np.ndarray, angle: float, seed: int, frame=(1600, 1200), fill=0.9, tilt=0.0,
               blur=0.8, noise=3.0, quality=85) -> np.ndarray:
    """`page` seen by a camera: rotated by `angle`, perspective `tilt`, blur, noise, JPEG."""
    rng = np.random.default_rng(seed)
    h, w = page.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    a = np.deg2rad(angle)
    rot = (src - [w / 2, h / 2]) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    ext = rot.max(0) - rot.min(0)
    s = fill * min(frame[0] / ext[0], frame[1] / ext[1])
    dst = rot * s + [frame[0] / 2, frame[1] / 2] + tilt * rng.uniform(-1, 1, (4, 2)) * min(frame)
    hom = cv2.getPerspectiveTransform(src, np.float32(dst))
    img = cv2.warpPerspective(page, hom, frame, flags=cv2.INTER_AREA, borderValue=(70, 60, 50))
    img = cv2.GaussianBlur(img, (0, 0), blur)
    img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def make_run(root) -> tuple[RunDir, Config]:
    cfg = Config()  # built directly: from_dict would validate (and import) models and attacks
    cfg.run.name = "t"
    cfg.base_dir = str(root)
    run = RunDir(root / "runs" / "t")
    run.init({"run": {"name": "t"}}, 0, "cpu")
    items = []
    for k in range(N_ITEMS):
        key = f"m/bim/16/img{k}"
        clean, adv = f"generate/m/clean/img{k}.png", f"generate/m/bim_eps16/img{k}.png"
        write_image(run.root / clean, pattern(2 * k))
        write_image(run.root / adv, pattern(2 * k + 1))
        items.append({"key": key, "model": "m", "attack": "bim", "eps": 16.0, "image": f"img{k}",
                      "clean": clean, "adv": adv})
    (run.root / "generate" / "index.json").write_text(json.dumps({"items": items}))
    return run, cfg


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    root = tmp_path_factory.mktemp("sheets")
    run, cfg = make_run(root)
    t = time.perf_counter()
    summary = print_stage(run, cfg)
    t_print = time.perf_counter() - t
    t = time.perf_counter()
    pages = render(run.root / "print" / "sheets.pdf")
    t_render = time.perf_counter() - t
    print(f"\nprint stage {t_print:.2f} s, rasterize {len(pages)} pages at {DPI} dpi {t_render:.2f} s")
    return run, cfg, summary, pages


def digital(run: RunDir, cell: dict) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(run.root / cell["image"])), cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------------------------
# print stage


def test_print_stage_outputs(printed):
    run, cfg, summary, pages = printed
    assert summary["sheets"] == 2 and summary["cells"] == 2 * N_ITEMS
    lay = read_json(run.root / "print" / "layout.json")
    assert lay["run_id"] == run.run_id and lay["tag"] == list(run_tag(run.run_id))
    assert lay["n_sheets"] == 2 and lay["pdf"] == "print/sheets.pdf"
    cells = lay["cells"]
    assert [(c["sheet"], c["slot"]) for c in cells] == [(0, s) for s in range(6)] + [(1, s) for s in range(4)]
    assert [c["role"] for c in cells[:4]] == ["clean", "adv", "clean", "adv"]
    assert cells[1]["item"] == "m/bim/16/img0" and cells[1]["label"] == "bim eps16 img0 adv"
    assert all(c["width_px"] == 224 and c["height_px"] == 224 for c in cells)
    prints = run.root.parent.parent / "prints" / "t.pdf"
    assert prints.is_file() and prints.read_bytes() == (run.root / "print" / "sheets.pdf").read_bytes()


def test_pdf_page_size_and_cell_scale(printed):
    run, cfg, summary, pages = printed
    doc = pdfium.PdfDocument(str(run.root / "print" / "sheets.pdf"))
    assert len(doc) == 2
    w_pt, h_pt = doc[0].get_size()
    doc.close()
    assert w_pt == pytest.approx(210 / 25.4 * 72, abs=0.05) and h_pt == pytest.approx(297 / 25.4 * 72, abs=0.05)
    lay = layout_for(cfg.sheet)
    k = DPI / 25.4
    grey = cv2.cvtColor(pages[0], cv2.COLOR_RGB2GRAY)
    for slot in (0, 5):
        x, y, w, h = lay.cell_rect(slot)
        row = grey[int((y + h / 2) * k)]
        lo, hi = int((x - 2) * k), int((x + w + 2) * k)  # 2 mm of white paper on each side
        inked = np.flatnonzero(row[lo:hi] < 245)
        assert inked.size and inked[-1] - inked[0] + 1 == pytest.approx(w * k, abs=2)  # 265.7 px
        assert abs(lo + inked[0] - x * k) <= 1.5


def test_markers_on_page_and_bits(printed):
    run, cfg, summary, pages = printed
    bits = marker_bits(7)
    assert bits.shape == (7, 7) and bits[0].all() and bits[:, 0].all() and not bits[1:-1, 1:-1].all()
    lay = layout_for(cfg.sheet)
    found = detect_markers(pages[1])
    want = {lay.marker_id(1, p) for p in range(lay.lattice_points)} | set(run_tag(run.run_id))
    assert set(found) == want


def test_too_many_sheets_is_a_clear_error():
    lay = layout_for(Config().sheet)
    n = lay.max_sheets * lay.cells_per_sheet // 2 + 1
    items = [{"key": str(i), "clean": "c.png", "adv": "a.png"} for i in range(n)]
    with pytest.raises(ValueError, match="at most 50 sheets"):
        assign_cells(items, lay)
    assert len(assign_cells(items[:-1], lay)) == 2 * (n - 1)


# ----------------------------------------------------------------------------------------------
# align stage


def test_align_stage_end_to_end(printed, tmp_path):
    run, cfg, summary, pages = printed
    photos = run.photos_dir
    for old in photos.iterdir():
        old.unlink()
    write_image(photos / "IMG_0001.jpg", photograph(pages[0], 0, 1), quality=92)
    write_image(photos / "IMG_0002.jpg", photograph(pages[1], 90, 2, tilt=0.04), quality=92)
    write_image(photos / "z sheet0 tilted.png", photograph(pages[0], 200, 3, tilt=0.06, blur=1.0))
    # a blank page, a truncated JPEG, a text file, and a sheet printed for another run
    write_image(photos / "blank.jpg", photograph(np.full_like(pages[0], 250), 10, 4))
    good = (photos / "IMG_0001.jpg").read_bytes()
    (photos / "broken.jpg").write_bytes(good[: len(good) // 2])
    (photos / "notes.txt").write_text("not a photo")
    lay = layout_for(cfg.sheet)
    cells = [{"sheet": 0, "slot": s, "image": run.root / f"generate/m/clean/img{s // 2}.png", "label": "x"}
             for s in range(6)]
    other_id = next(f"another-run-{i}" for i in range(9) if run_tag(f"another-run-{i}") != run_tag(run.run_id))
    write_sheets(tmp_path / "other.pdf", lay, cells, other_id, "other")
    write_image(photos / "other_run.jpg", photograph(render(tmp_path / "other.pdf")[0], 30, 5))

    t = time.perf_counter()
    res = align_stage(run, cfg)
    dt = time.perf_counter() - t
    assert res == {"photos": 7, "skipped": 4, "cells_found": 10, "cells_expected": 10}

    out = read_json(run.root / "align" / "crops.json")
    status = {p["photo"]: p for p in out["photos"]}
    assert status["blank.jpg"]["status"] == "skipped" and status["blank.jpg"]["reason"] == "no markers found"
    assert status["broken.jpg"]["status"] == "skipped" and "truncated" in status["broken.jpg"]["reason"]
    assert status["notes.txt"]["status"] == "skipped"
    assert status["other_run.jpg"]["status"] == "skipped" and "another run" in status["other_run.jpg"]["reason"]
    assert status["IMG_0001.jpg"]["sheets"] == [0] and status["IMG_0001.jpg"]["cells"] == 6
    assert status["IMG_0002.jpg"]["sheets"] == [1] and status["IMG_0002.jpg"]["cells"] == 4
    assert out["missing"] == []
    assert {c["photo"] for c in out["crops"]} == {"IMG_0001.jpg", "IMG_0002.jpg", "z sheet0 tilted.png"}

    layout_cells = {(c["sheet"], c["slot"]): c for c in read_json(run.root / "print" / "layout.json")["cells"]}
    maes, others = [], []
    for c in out["crops"]:
        assert c["accepted"] and c["reason"] == "ok" and c["markers"] == 4 and c["inside"] == 1.0
        assert c["reprojection_px"] < 2.0
        cell = layout_cells[(c["sheet"], c["slot"])]
        assert (c["item"], c["role"]) == (cell["item"], cell["role"])
        crop = read_photo(run.root / c["path"])
        assert crop.shape == (224, 224, 3)
        want = digital(run, cell)
        mae = float(np.abs(crop.astype(np.float64) - want).mean())
        maes.append(mae)
        assert mae < MAE_BOUND, (c["path"], mae)
        # and much further from the other image of its pair: the crop is the right cell
        other = layout_cells[(c["sheet"], c["slot"] ^ 1)]
        other_mae = float(np.abs(crop.astype(np.float64) - digital(run, other)).mean())
        others.append(other_mae)
        assert other_mae > 2 * MAE_BOUND
    best = [(c["sheet"], c["slot"]) for c in out["crops"] if c["best"]]
    assert sorted(best) == sorted(layout_cells)
    print(f"\nalign stage: {len(out['photos'])} photos in {dt:.2f} s; crop MAE mean {np.mean(maes):.2f}, "
          f"max {np.max(maes):.2f}; against the pair's other image min {np.min(others):.1f} (0..255)")


def test_cut_off_cells_are_missing_not_guessed(printed):
    run, cfg, summary, pages = printed
    lay = layout_for(cfg.sheet)
    k = DPI / 25.4
    x_cut = int((lay.cell_rect(1)[0] + 15) * k)  # through the right column of cells
    photo = photograph(pages[0][:, :x_cut], 0, 6, frame=(1200, 1600))
    tag = run_tag(run.run_id)
    crops, problems = align_photo(photo, lay, tag, {(0, s): (224, 224) for s in range(6)}, AlignConfig())
    by_slot = {c["slot"]: c for c in crops}
    assert {0, 2, 4} <= set(by_slot) and all(by_slot[s]["accepted"] for s in (0, 2, 4))
    for s in (1, 3, 5):  # right column: its right-hand markers are cut off
        assert s not in by_slot
        assert any(p.startswith(f"sheet 0 cell {s}: 2 of 4") for p in problems)
    # the run tag is cut off too: still accepted, on >= 4 consistent lattice markers
    assert not set(tag) & set(detect_markers(photo))


def test_read_photo_and_undistort(tmp_path):
    img = pattern(3)
    write_image(tmp_path / "a.jpg", img, quality=95)
    assert read_photo(tmp_path / "a.jpg").shape == (224, 224, 3)
    (tmp_path / "b.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:500])
    with pytest.raises(ValueError, match="b.jpg"):
        read_photo(tmp_path / "b.jpg")
    cal = tmp_path / "cam.json"
    cal.write_text(json.dumps({"camera_matrix": [[300, 0, 111.5], [0, 300, 111.5], [0, 0, 1]],
                               "dist_coeffs": [0, 0, 0, 0, 0]}))
    assert np.abs(undistort(img, cal).astype(int) - img).mean() < 1.0
