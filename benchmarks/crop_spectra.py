"""What two channels do to the same printed cells: transfer and residual spectra of their crops.

For every cell that two runs both photographed and aligned (e.g. benchmarks/fidelity.py's
`measured-G` and `predicted-G`, under OUT/VARIANT), the crop's luma is compared with the digital image's: the transfer
H(f) = <C D*> / <|D|^2> (the cross-spectrum: what of the image the photo keeps, unbiased by noise)
and the residual power |C|^2 / <|D|^2> - H^2 (what the photo adds that is not the image: noise and
texture, relative to the image's own power), radially averaged over 16 bands of cycles per crop
pixel; and the mean colour shift (crop - digital).

    python benchmarks/crop_spectra.py RUN_A RUN_B
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

BANDS = 16


def _grey(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float64) / 255


def cross_spectra(digital: np.ndarray, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Luma spectra of an RGB [0, 1] digital image and its crop (same size), Hann-windowed: the
    cross-spectrum C D*, |D|^2, |C|^2 and the radial frequency (cycles per pixel) of every bin."""
    h, w = digital.shape[:2]
    win = np.outer(np.hanning(h), np.hanning(w))
    gd, gc = digital.mean(2), crop.mean(2)
    D, C = np.fft.fft2((gd - gd.mean()) * win), np.fft.fft2((gc - gc.mean()) * win)
    f = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    return (C * D.conj()).real, np.abs(D) ** 2, np.abs(C) ** 2, f


def _radial(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    bands = np.minimum((r / 0.5 * BANDS).astype(int), BANDS)
    return np.array([a[bands == i].mean() for i in range(BANDS)])


def spectra(runs: list[Path]) -> dict:
    from physical.stages.classify import load_records
    from physical.rundir import RunDir
    from physical.runfiles import load_layout

    recs = [{r["key"]: r for r in load_records(RunDir(root))} for root in runs]
    image = {(c["item"], c["role"]): c["image"] for c in load_layout(RunDir(runs[0])).cells.values()}
    acc = [{"cross": 0.0, "dd": 0.0, "cc": 0.0, "shift": []} for _ in runs]
    for key in sorted(set(recs[0]).intersection(*recs[1:])):
        for role in ("clean", "adv"):
            d = _grey(runs[0] / image[(key, role)])
            for a, root, rec in zip(acc, runs, recs):
                c = _grey(root / rec[key]["crops"][role])
                cross, dd, cc, _ = cross_spectra(d, c)
                a["cross"] = a["cross"] + _radial(cross)
                a["dd"] = a["dd"] + _radial(dd)
                a["cc"] = a["cc"] + _radial(cc)
                a["shift"].append((c - d).mean((0, 1)))
    return {str(root): {"transfer": a["cross"] / a["dd"], "residual": a["cc"] / a["dd"] - (a["cross"] / a["dd"]) ** 2,
                        "shift": np.mean(a["shift"], 0), "cells": len(a["shift"])} for root, a in zip(runs, acc)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    a = p.parse_args()
    out = spectra(a.runs)
    f = (np.arange(BANDS) + 0.5) / BANDS * 0.5
    print(f"{'cycles per crop px':<26}" + " ".join(f"{v:5.3f}" for v in f))
    for root, s in out.items():
        name = Path(root).name
        print(f"{name + ' transfer':<26}" + " ".join(f"{v:5.2f}" for v in s["transfer"]))
        print(f"{name + ' residual':<26}" + " ".join(f"{v:5.2f}" for v in s["residual"]))
        print(f"{name}: {s['cells']} crops, mean colour shift (crop - digital) {np.round(s['shift'], 3)}")


if __name__ == "__main__":
    main()
