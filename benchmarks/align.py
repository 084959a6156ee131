"""Align throughput and recovery on 12-megapixel photos (issue #5).

A run's real sheet (A4, 45 mm cells, 12 cells: `physical.sheets.synthetic.cell_images`, printed by
the print stage) is rasterized at 300 dpi and photographed into 4000 x 3000 JPEGs at three
difficulty levels (`synthetic.LEVELS`: rotation over the full circle at every level; then growing
perspective tilt, blur, noise, lighting gradient, JPEG loss, smaller cells and covered markers).
Each photo is read from its JPEG file and aligned, as the align stage does it.

Printed per level: seconds per photo (read + align, median, after one warm-up photo), as wall time
and as the process's CPU time (both threads added up: on a busy shared machine the wall time
waits for other processes, while an idle 2-core machine needs at most the CPU time), photos per
second (wall), and the cells recovered / cells expected: a cell counts when its crop is accepted
and its corners lie within 2 px of the truth; a crop further off is counted as *wrong* (there
should be none). Target: <= 1 s per 12 MP photo on a 2-core CPU, 100 % recovery at the mild level.

    python benchmarks/align.py [--photos 8] [--levels mild,medium,hard] [--threads 2] [--seed 0]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def make_sheet(root: Path):
    """A printed run of 6 pairs (one full A4 sheet): (layout, tag, cells, references, pdf path)."""
    from physical.align import reference_images
    from physical.rundir import read_json
    from physical.sheets import print_stage
    from physical.sheets.layout import Layout
    from physical.sheets.synthetic import make_run

    run, cfg = make_run(root, "bench", 6)
    print_stage(run, cfg)
    lay = read_json(run.root / "print" / "layout.json")
    cells = {(c["sheet"], c["slot"]): c for c in lay["cells"]}
    sizes = {k: (c["width_px"], c["height_px"]) for k, c in cells.items()}
    return Layout.from_dict(lay["layout"]), tuple(lay["tag"]), sizes, reference_images(run.root, cells), \
        run.root / "print" / "sheets.pdf"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=8, help="photos per level")
    ap.add_argument("--levels", default="mild,medium,hard")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    cv2.setNumThreads(a.threads)

    from physical.align import align_photo, read_photo
    from physical.config import AlignConfig
    from physical.sheets import synthetic
    from physical.simulate import rasterize_pdf

    tmp_dir = tempfile.TemporaryDirectory(prefix="bench-align-")  # 12 MP JPEGs: removed at the end
    tmp = Path(tmp_dir.name)
    layout, tag, sizes, refs, pdf = make_sheet(tmp)
    page = next(rasterize_pdf(pdf, 300))
    rng = np.random.default_rng(a.seed)
    cfg = AlignConfig()
    print(f"align benchmark: 4000 x 3000 JPEG photos of one A4 sheet ({len(sizes)} cells of 45 mm), page "
          f"rasterized at 300 dpi; OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; "
          f"{a.photos} photos per level")

    def one(shot: dict, path: Path) -> tuple[float, float, int, int]:
        path.write_bytes(shot["jpeg"])
        t, c0 = time.perf_counter(), time.process_time()
        photo = read_photo(path)
        crops, _ = align_photo(photo, layout, tag, sizes, cfg, references=refs)
        dt, cpu = time.perf_counter() - t, time.process_time() - c0
        ok = wrong = 0
        for c in crops:
            truth = synthetic.project(shot["h"], layout.cell_corners(c["slot"]))
            err = float(np.linalg.norm(np.array(c["corners_px"]) - truth, axis=1).max())
            if c["sheet"] != 0 or err > 2.0:
                wrong += 1
            elif c["accepted"]:
                ok += 1
        return dt, cpu, ok, wrong

    one(synthetic.random_photo(page, 300, layout, "mild", rng), tmp / "warmup.jpg")  # first call: imports, caches
    rows, all_wall, all_cpu = [], [], []
    for level in a.levels.split(","):
        wall, cpu, found, wrong, cell_px = [], [], 0, 0, []
        for i in range(a.photos):
            shot = synthetic.random_photo(page, 300, layout, level, rng)
            dt, c, ok, bad = one(shot, tmp / f"{level}-{i}.jpg")
            wall.append(dt)
            cpu.append(c)
            found += ok
            wrong += bad
            cell_px.append(shot["cell_px"])
        all_wall += wall
        all_cpu += cpu
        rows.append((level, wall, cpu, found, a.photos * len(sizes), wrong, min(cell_px), max(cell_px)))
    print(f"{'level':<8} {'wall s':>7} {'cpu s':>6} {'cpu max':>8} {'photos/s':>9} {'recovered':>16} "
          f"{'wrong':>6}  cell px")
    for level, wall, cpu, found, expected, wrong, lo, hi in rows:
        print(f"{level:<8} {statistics.median(wall):7.2f} {statistics.median(cpu):6.2f} {max(cpu):8.2f} "
              f"{1 / statistics.median(wall):9.2f} {found:6d}/{expected:<4d}{100 * found / expected:5.1f}% {wrong:6d}"
              f"  {lo:.0f}-{hi:.0f}")
    print(f"{'all':<8} {statistics.median(all_wall):7.2f} {statistics.median(all_cpu):6.2f} {max(all_cpu):8.2f} "
          f"{1 / statistics.median(all_wall):9.2f}   (s per 12 MP photo, read + align; target <= 1 s)")
    tmp_dir.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
