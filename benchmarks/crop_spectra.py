"""What two channels do to the same printed cells: transfer and residual spectra of their crops.

For every cell that two runs both photographed and aligned (e.g. benchmarks/fidelity.py's
`measured-G` and `predicted-G`), the crop's luma is compared with the digital image's: the transfer
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


def _radial(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    bands = np.minimum((r / 0.5 * BANDS).astype(int), BANDS)
    return np.array([a[bands == i].mean() for i in range(BANDS)])


def spectra(runs: list[Path]) -> dict:
    from physical.classify import load_records
    from physical.rundir import RunDir
    from physical.runfiles import load_layout

    recs = [{r["key"]: r for r in load_records(RunDir(root))} for root in runs]
    image = {(c["item"], c["role"]): c["image"] for c in load_layout(RunDir(runs[0])).cells.values()}
    acc = [{"cross": 0.0, "dd": 0.0, "cc": 0.0, "shift": []} for _ in runs]
    for key in sorted(set(recs[0]).intersection(*recs[1:])):
        for role in ("clean", "adv"):
            d = _grey(runs[0] / image[(key, role)])
            win = np.outer(np.hanning(d.shape[0]), np.hanning(d.shape[1]))
            gd = d.mean(2)
            D = np.fft.fft2((gd - gd.mean()) * win)
            for a, root, rec in zip(acc, runs, recs):
                c = _grey(root / rec[key]["crops"][role])
                gc = c.mean(2)
                C = np.fft.fft2((gc - gc.mean()) * win)
                a["cross"] = a["cross"] + _radial((C * D.conj()).real)
                a["dd"] = a["dd"] + _radial(np.abs(D) ** 2)
                a["cc"] = a["cc"] + _radial(np.abs(C) ** 2)
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
