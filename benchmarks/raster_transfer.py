"""How much of a printed image's detail the simulator's page raster keeps, by raster resolution.

The simulated capture rasterizes the run's PDF (pdfium) at ``capture.dpi`` (by default the photo's
own resolution on the page) before the channel. This renders page 1 of a run's sheets at several
resolutions, directly (pdfium resamples the images to the raster) and as the simulator does it
(printed at 600 dpi and area-averaged to the raster, `physical.sim.print_camera.printed_pages`), cuts every cell out, area-averages it back to the image's own pixels and measures the
transfer against the digital image (cross-spectrum over its power) in bands of cycles per image
pixel: 1 everywhere would be a raster that keeps all of the image.

    python benchmarks/raster_transfer.py RUN_DIR [--dpi 302,600,1200]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crop_spectra import cross_spectra  # noqa: E402

BANDS = ((0.0, 0.05), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5))


def transfer(digital: np.ndarray, crop: np.ndarray) -> np.ndarray:
    h, w = digital.shape[:2]
    c = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    cross, power, _, f = cross_spectra(digital.astype(np.float64) / 255, c)
    return np.array([cross[(f >= a) & (f < b)].sum() / power[(f >= a) & (f < b)].sum() for a, b in BANDS])


def main() -> None:
    from physical.rundir import RunDir, read_image
    from physical.runfiles import load_layout
    from physical.sim.print_camera import printed_pages, rasterize_pdf

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--dpi", default="302,600,1200")
    a = p.parse_args()
    printed = load_layout(RunDir(a.run))
    cells = [(slot, c) for (sheet, slot), c in printed.cells.items() if sheet == 0]
    print("bands (cycles per image pixel): " + ", ".join(f"{lo:g}-{hi:g}" for lo, hi in BANDS))
    for dpi in (float(v) for v in a.dpi.split(",")):
        for how, pages in (("pdfium at the raster", rasterize_pdf),
                           ("printed at 600 dpi", lambda pdf, d: (p.page for p in printed_pages(pdf, d)))):
            page = next(pages(a.run / printed.pdf, dpi))
            k = dpi / 25.4
            acc = 0
            for slot, c in cells:
                x, y, w, h = printed.layout.cell_rect(slot)
                crop = page[round(y * k): round((y + h) * k), round(x * k): round((x + w) * k)]
                acc = acc + transfer(read_image(a.run / c["image"]), crop)
            print(f"{dpi:6.0f} dpi, {how:<20}: transfer {np.round(acc / len(cells), 3)} ({len(cells)} cells)")


if __name__ == "__main__":
    main()
