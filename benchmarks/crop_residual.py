"""What of two channels' clean crops costs the classifier, and how much of it is locked to the image.

For the clean cells that both runs of a pair photographed and aligned (benchmarks/fidelity.py's
`measured-G[-rR]` and `predicted-G[-rR]`: in its --out folder, or OUT/VARIANT since issue 29):

1. every crop is split into a linear filter of the digital image (7 x 7 taps per channel and an
   offset, least squares per crop: blur, sharpening, sub-pixel shift, gain) and the residual;
2. top-1 accuracy of: each run's crops; their filtered parts alone; the predicted filtered part plus
   the measured residual, and the other way round; the predicted crops given the measured crops'
   per-channel histograms (colour and tone) and low band (below 0.1 cycles per crop pixel);
3. the residual's image-locked share: the high-passed residuals (minus a Gaussian of 1.5 px) of two
   cells of the same image in one run correlate where the printer and camera render the image with
   an error that follows it; random texture does not (two different images are the control).

Accuracies are over cells, which are not independent (an image has several): their Wilson
intervals are too narrow; compare the rows with each other.

    python benchmarks/crop_residual.py FIDELITY_OUT [--groups 0,1,2,3] [--rounds 1]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

TAPS = 7


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def linear_fit(digital: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """The crop's least-squares fit by a TAPS x TAPS filter of the digital image, per channel, plus an offset."""
    h = TAPS // 2
    padded = np.pad(digital, ((h, h), (h, h), (0, 0)), mode="reflect")
    out = np.empty_like(crop)
    for c in range(3):
        a = sliding_window_view(padded[..., c], (TAPS, TAPS)).reshape(-1, TAPS * TAPS)
        a = np.column_stack([a, np.ones(len(a), np.float32)])
        coef, *_ = np.linalg.lstsq(a[::3], crop[..., c].reshape(-1)[::3], rcond=None)  # every third pixel
        out[..., c] = (a @ coef).reshape(crop.shape[:2])
    return out


def cells(out: Path, groups: list[int], rounds: int) -> list[dict]:
    """Every clean cell both runs of a pair hold: label, image, run, digital, measured and predicted crops."""
    from physical.stages.classify import load_records
    from physical.rundir import RunDir
    from physical.runfiles import load_layout

    rows = []
    for g in groups:
        for r in range(rounds):
            runs = [out / f"measured-{g}{'' if r == 0 else f'-r{r}'}", out / f"predicted-{g}{'' if r == 0 else f'-r{r}'}"]
            if not all((run / "classify" / "predictions.json").is_file() for run in runs):
                continue
            image = {(c["item"], c["role"]): c["image"] for c in load_layout(RunDir(runs[0])).cells.values()}
            recs = [{x["key"]: x for x in load_records(RunDir(run))} for run in runs]
            for key in sorted(set(recs[0]) & set(recs[1])):
                m, p = recs[0][key], recs[1][key]
                if m.get("label") is None or "clean" not in m["crops"] or "clean" not in p["crops"]:
                    continue
                rows.append({"label": m["label"], "image": m["image"], "run": f"{g}-{r}",
                             "digital": _read(runs[0] / image[(key, "clean")]),
                             "m": _read(runs[0] / m["crops"]["clean"]), "p": _read(runs[1] / p["crops"]["clean"])})
    return rows


def _histogram_matched(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    out = np.empty_like(src)
    for c in range(3):
        order = np.argsort(src[..., c], axis=None)
        flat = np.empty(order.size, np.float32)
        flat[order] = np.sort(ref[..., c], axis=None)
        out[..., c] = flat.reshape(src.shape[:2])
    return out


def _low(a: np.ndarray) -> np.ndarray:
    """Below 0.1 cycles per pixel (an ideal radial low-pass)."""
    f = np.hypot(np.fft.fftfreq(a.shape[0])[:, None], np.fft.fftfreq(a.shape[1])[None, :])
    return np.real(np.fft.ifft2(np.fft.fft2(a, axes=(0, 1)) * (f < 0.1)[..., None], axes=(0, 1))).astype(np.float32)


def locked(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel: the high-passed residual's variance, and the correlation of two cells of one image
    in one run (and of two different images: the control)."""
    per: dict = {}
    for row in rows:
        res = row[key] - row["fit_" + key]
        per.setdefault((row["run"], row["image"]), []).append((res - cv2.GaussianBlur(res, (0, 0), 1.5))[8:-8, 8:-8])

    def corr(a, b):
        return [np.corrcoef(a[..., c].ravel(), b[..., c].ravel())[0, 1] for c in range(3)]

    pairs = [v[:2] for v in per.values() if len(v) >= 2]
    same = np.mean([corr(a, b) for a, b in pairs], 0)
    other = np.mean([corr(pairs[i][0], pairs[i + 1][1]) for i in range(len(pairs) - 1)], 0)
    var = np.mean([a.var((0, 1)) for v in per.values() for a in v], 0)
    return var, same, other


def main() -> None:
    from physical.models import load_model
    from physical.measure.stats import wilson

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="benchmarks/fidelity.py's --out folder")
    p.add_argument("--groups", default="0,1,2,3")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--model", default="efficientnet_lite0")
    a = p.parse_args()
    rows = cells(a.out, [int(g) for g in a.groups.split(",")], a.rounds)
    if not rows:
        raise SystemExit(f"{a.out}: no measured-G / predicted-G runs with clean crops")
    for row in rows:
        row["fit_m"], row["fit_p"] = linear_fit(row["digital"], row["m"]), linear_fit(row["digital"], row["p"])
    model = load_model(a.model).eval()
    labels = torch.tensor([row["label"] for row in rows])

    def accuracy(name: str, images: list[np.ndarray]) -> None:
        x = torch.from_numpy(np.clip(np.stack(images), 0, 1)).permute(0, 3, 1, 2)
        with torch.no_grad():
            top = torch.cat([model(x[i: i + 32]).argmax(1) for i in range(0, len(x), 32)])
        k = int((top == labels).sum())
        lo, hi = wilson(k, len(rows))
        print(f"  {name:<52} {k / len(rows):.3f} [{lo:.3f}, {hi:.3f}] ({k}/{len(rows)})")

    print(f"{len(rows)} clean cells; top-1 accuracy:")
    accuracy("measured crops", [r["m"] for r in rows])
    accuracy("predicted crops", [r["p"] for r in rows])
    accuracy("measured, linear part", [r["fit_m"] for r in rows])
    accuracy("predicted, linear part", [r["fit_p"] for r in rows])
    accuracy("predicted linear part + measured residual", [r["fit_p"] + r["m"] - r["fit_m"] for r in rows])
    accuracy("measured linear part + predicted residual", [r["fit_m"] + r["p"] - r["fit_p"] for r in rows])
    accuracy("predicted, the measured histograms per channel", [_histogram_matched(r["p"], r["m"]) for r in rows])
    accuracy("predicted, the measured band below 0.1 cycles/px", [r["p"] - _low(r["p"]) + _low(r["m"]) for r in rows])
    print("high-passed residual (after the linear part), R G B:")
    for key, name in (("m", "measured"), ("p", "predicted")):
        var, same, other = locked(rows, key)
        print(f"  {name:<10} variance {np.round(var * 1e4, 2)} e-4; two cells of one image correlate "
              f"{np.round(same, 3)} (two images {np.round(other, 3)}): locked to the image "
              f"{np.round(var * same * 1e4, 2)} e-4, the rest {np.round(var * (1 - same) * 1e4, 2)} e-4")


if __name__ == "__main__":
    main()
