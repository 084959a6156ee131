"""The virtual printer and camera: printed sheets (the PDF) -> photos, through the channel.

Every page of ``print/sheets.pdf`` is printed at the printer's resolution (:data:`PRINTER_DPI`) and
seen at ``capture.dpi`` (left out: as fine as the photo's pixels on the page, :func:`auto_dpi`),
:func:`printed_pages`, then photographed
``capture.photos_per_sheet`` times by :class:`physical.channel.core.Channel` into a ``capture.frame``
(W, H) photo lying on a desk. The channel's scale range is the fraction of the frame the sheet's
outline fills (see the channel's docstring), so with scale <= 1 the whole sheet is in the photo.

The channel runs without its differentiable JPEG; the photo file itself is a real JPEG written at
the sampled quality (quality 100 = the channel's "off", written at 100), as a camera does it once.

``capture/simulated.json`` records, per photo, the homographies (sheet raster pixel -> photo pixel
and sheet millimetre -> photo pixel, pixel centres at integers as in OpenCV) and the parameters:
the ground truth that tests of the align stage compare against. Runs are reproducible: every
random draw comes from one ``torch.Generator`` seeded with ``run.seed``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import cv2
import numpy as np
import pypdfium2 as pdfium
import torch
import torch.nn.functional as F

from physical.channel.build import build_channel
from physical.channel.core import Channel, params_at, params_to_json
from physical import runfiles
from physical.models import pick_device
from physical.rundir import RunDir, write_image, write_json
from physical.runtime import Eta
from physical.channel.halftone import halftone

MM_PER_INCH = 25.4
# A printer renders a page at its device resolution (600 dpi: office lasers and inkjets) and the lens
# averages that print over each photo pixel. Rasterizing the PDF directly at the photo's coarser
# resolution instead lets pdfium resample the embedded images there, which smooths them: at 302 dpi
# it kept 0.37 of a 126-ppi image's detail at 0.4-0.5 cycles per image pixel, the printed raster
# area-averaged to 302 dpi 0.57-0.62 (benchmarks/raster_transfer.py).
PRINTER_DPI = 600.0


def rasterize_pdf(path: str | Path, dpi: float) -> Iterator[np.ndarray]:
    """Yield every page of a PDF as an H x W x 3 RGB uint8 array, one page at a time."""
    pdf = pdfium.PdfDocument(str(path))
    try:
        for i in range(len(pdf)):
            page = pdf[i]
            bitmap = page.render(scale=dpi / 72.0)
            a = bitmap.to_numpy()
            mode = bitmap.mode
            if mode in ("BGR", "BGRA", "BGRX"):  # pdfium's native order
                a = a[..., 2::-1]
            elif mode in ("RGBA", "RGBX"):
                a = a[..., :3]
            elif mode == "L":
                a = np.repeat(a[..., None], 3, axis=2)
            yield np.ascontiguousarray(a)
            bitmap.close()
            page.close()
    finally:
        pdf.close()


class PrintedPage(NamedTuple):
    page: np.ndarray  # H x W x 3 uint8, the printed page as the camera's optics see it
    screen: Optional[np.ndarray]  # what the printer's halftone changed in it, or None (no screen)


def printed_pages(path: str | Path, dpi: float, printer_dpi: float = PRINTER_DPI,
                  halftone_lpi: Optional[float] = None) -> Iterator[PrintedPage]:
    """Every page as printed at (at least) `printer_dpi` and area-averaged to `dpi`: the same size
    and pixel grid as :func:`rasterize_pdf` at `dpi`, each pixel the mean of k x k printed pixels
    (an integer k, so the geometry stays exact). With `halftone_lpi` the printer screens its inks
    (physical.channel.halftone): its ``screen`` is the screened page averaged the same way minus
    the page (float32, [0, 1] units, zero on average); None without a screen."""
    k = max(1, math.ceil(printer_dpi / dpi - 1e-9))
    for fine in rasterize_pdf(path, dpi * k):
        # pdfium's size at dpi is ceil(points * dpi / 72) = ceil(its size at k * dpi / k) for an integer k
        h, w = -(-fine.shape[0] // k), -(-fine.shape[1] // k)
        pad = np.full((h * k, w * k, 3), 255, np.uint8)  # paper beyond the page's last full pixel
        pad[:fine.shape[0], :fine.shape[1]] = fine
        del fine
        page = cv2.resize(pad, (w, h), interpolation=cv2.INTER_AREA)  # an integer factor: block means
        if halftone_lpi is None:
            yield PrintedPage(page, None)
            continue
        dots = cv2.resize(halftone(pad, dpi * k, halftone_lpi), (w, h), interpolation=cv2.INTER_AREA)
        yield PrintedPage(page, (dots.astype(np.float32) - page.astype(np.float32)) / 255)


def mm_to_px(dpi: float) -> np.ndarray:
    """3x3: page millimetres -> raster pixel coordinates (pixel centres at integers)."""
    s = dpi / MM_PER_INCH
    return np.array([[s, 0, -0.5], [0, s, -0.5], [0, 0, 1]], np.float64)


def desk(size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """A plausible desk, 1 x 3 x H x W: mid grey with a tint, slow blotches and fine grain."""
    w, h = size
    u = torch.rand(5, generator=generator)
    base = 0.32 + 0.16 * u[0]
    tint = torch.tensor([1.0 + 0.06 * u[1], 1.0, 1.0 - 0.06 * u[2]]).view(1, 3, 1, 1)
    blotch = torch.rand(1, 1, 6, 8, generator=generator)
    blotch = F.interpolate(blotch, size=(h, w), mode="bicubic", align_corners=False)
    grain = torch.rand(1, 1, h, w, generator=generator)
    return ((base + 0.08 * (blotch - 0.5) + 0.03 * (grain - 0.5)) * tint).clamp(0, 1)


def auto_dpi(channel: Channel, page_mm: tuple[float, float], frame: tuple[int, int]) -> float:
    """A raster as fine as the photo's pixels on the page at the channel's largest scale (a coarser
    one would blur what the camera resolves, a finer one only costs time), 100 .. 600 dpi."""
    px_per_mm = channel.ranges()["scale"][1] * min(frame[0] / page_mm[0], frame[1] / page_mm[1])
    return float(min(600.0, max(100.0, round(px_per_mm * MM_PER_INCH))))


def _photograph_sheet(run: RunDir, channel: Channel, cap, i: int, page: np.ndarray, screen: Optional[np.ndarray],
                      dpi: float, frame: tuple[int, int], generator: torch.Generator, device, eta: Eta) -> list[dict]:
    """The photos of sheet `i` (its page and halftone screen): written to capture/photos/, their records."""
    sheet = torch.from_numpy(page).to(device).permute(2, 0, 1)[None].float().div_(255)
    screen_t = None if screen is None else torch.from_numpy(screen).to(device).permute(2, 0, 1)[None]
    params = channel.sample(cap.photos_per_sheet, generator=generator, device=device)
    records = []
    for k in range(cap.photos_per_sheet):
        p = params_at(params, k)
        background = desk(frame, generator).to(device)
        with torch.no_grad():
            out = channel(sheet, p, out_size=frame, background=background, jpeg=False, screen=screen_t)
        photo = out.images[0].mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        quality = int(round(float(p["jpeg_quality"][0])))
        name = f"sheet{i:03d}-{k}.jpg"
        write_image(run.photos_dir / name, photo, quality=quality)
        hom_px = out.homographies[0].numpy()
        records.append(
            {
                "file": f"capture/photos/{name}",
                "sheet": i,
                "shot": k,
                "page_px": [page.shape[1], page.shape[0]],
                "homography_px": hom_px,
                "homography_mm": hom_px @ mm_to_px(dpi),
                "jpeg_quality": quality,
                "params": params_to_json(p, 0),
            }
        )
        eta.done(1)
    return records


def simulate_stage(run: RunDir, cfg, device: Optional[torch.device] = None) -> dict:
    """Photograph every printed sheet through the simulated channel; see the module docstring."""
    printed = runfiles.load_layout(run) if runfiles.has_layout(run) else None
    pdf_path = run.root / (printed.pdf if printed else "print/sheets.pdf")
    if not pdf_path.is_file():
        raise FileNotFoundError(f"{pdf_path}: no printed sheets to photograph; run the print stage first")

    cap = cfg.capture
    frame = (int(cap.frame[0]), int(cap.frame[1]))
    if device is None:
        device = pick_device(cfg.run.device)
    page_mm = ((float(printed.layout.page_w), float(printed.layout.page_h)) if printed
               else (float(cfg.sheet.width_mm), float(cfg.sheet.height_mm)))
    channel = build_channel(cap.channel, paper_mm=page_mm, frame=frame, printed_pages=True)
    dpi = float(cap.dpi) if cap.dpi else auto_dpi(channel, page_mm, frame)
    generator = torch.Generator().manual_seed(int(cfg.run.seed))
    records: list[dict] = []
    if printed:  # the photos it is about to write: known as the simulator's even if it is killed
        n = printed.n_sheets
        planned = [{"file": f"capture/photos/sheet{i:03d}-{k}.jpg"}
                   for i in range(n) for k in range(cap.photos_per_sheet)]
        write_json(run.root / "capture" / "simulated.json",
                   {"source": "simulate", "complete": False, "photos": planned})

    eta = Eta("capture", (printed.n_sheets if printed else 0) * cap.photos_per_sheet, unit="photo")
    for i, (page, screen) in enumerate(printed_pages(pdf_path, dpi, halftone_lpi=channel.halftone_lpi)):
        records += _photograph_sheet(run, channel, cap, i, page, screen, dpi, frame, generator, device, eta)

    if not records:
        raise ValueError(f"{pdf_path}: the PDF has no pages")
    write_json(
        run.root / "capture" / "simulated.json",
        {"source": "simulate", "seed": cfg.run.seed, "dpi": dpi, "frame": list(frame),
         "channel": channel.sources(), "photos": records},
    )
    return {"photos": len(records), "source": "simulate"}
