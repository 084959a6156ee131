"""Calibrating the survival forecast: a monotone map from the channel's draws to a probability.

The predicted survival of `physical.measure.survival` is the fraction of K channel draws in which an
attack still works. It can rank images well and still be off as a probability (the draws harsher or
milder than the photos). The forecast map is an isotonic regression (pool-adjacent-violators) of
outcomes on the draws' fraction, fitted on photos that the calibrated channel itself simulated
(`physical calibrate forecast`), never on the photos a prediction is judged on. It is stored beside
the calibration (``colour.json`` -> ``colour.forecast.json``), so the calibration file, and the EOT
images made from it, stay as they are; `physical predict` and the report apply it when it is there.

Scores of a forecast: the expected calibration error (ECE: the reliability bins' |predicted -
observed| weighted by their share of the images) next to the Brier score (`physical.measure.stats`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from physical.channel.files import CalibrationError
from physical.measure.stats import reliability
from physical.rundir import write_json

KIND = "physical/forecast-map"
MIN_ITEMS = 20  # fewer simulated outcomes than this make no map worth the name


def isotonic(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing step function of x closest to y in squared error.
    Returns the blocks' (mean x, fitted y, count), x increasing."""
    order = np.argsort(np.asarray(x, float), kind="stable")
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    blocks: list[list[float]] = []  # [sum x, sum y, count]
    for xi, yi in zip(xs, ys, strict=True):
        blocks.append([xi, yi, 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            sx, sy, n = blocks.pop()
            blocks[-1] = [blocks[-1][0] + sx, blocks[-1][1] + sy, blocks[-1][2] + n]
    b = np.array(blocks, float).reshape(-1, 3)
    return b[:, 0] / b[:, 2], b[:, 1] / b[:, 2], b[:, 2]


@dataclass
class ForecastMap:
    """Draws' fraction -> calibrated survival probability: linear between the isotonic blocks' points,
    flat beyond them."""
    x: list[float]
    y: list[float]
    n: int
    fitted_on: str = ""

    def __call__(self, p: Sequence[float]) -> list[float]:
        if not len(p):
            return []
        return [round(float(v), 4) for v in np.interp(np.asarray(p, float), self.x, self.y)]

    def document(self) -> dict:
        return {"kind": KIND, "x": [round(v, 6) for v in self.x], "y": [round(v, 6) for v in self.y],
                "n": self.n, "fitted_on": self.fitted_on,
                "note": "isotonic map from the fraction of channel draws in which an attack works to the survival "
                        "observed in photos the calibrated channel simulated (not in real photos)"}


def fit_forecast(draws: Sequence[float], observed: Sequence[bool], fitted_on: str = "") -> ForecastMap:
    """The isotonic map of `observed` (0/1) on `draws` (fractions); ValueError with fewer than MIN_ITEMS."""
    if len(draws) < MIN_ITEMS:
        raise ValueError(f"{len(draws)} simulated outcomes; a forecast map needs at least {MIN_ITEMS}")
    bx, by, _ = isotonic(draws, [float(o) for o in observed])
    return ForecastMap([float(v) for v in bx], [float(v) for v in by], len(draws), fitted_on)


def map_path(calibration: str | Path) -> Path:
    p = Path(calibration)
    return p.with_name(p.stem + ".forecast.json")


def save_forecast(calibration: str | Path, fmap: ForecastMap) -> Path:
    return write_json(map_path(calibration), fmap.document())


def load_forecast(calibration: Optional[str | Path]) -> Optional[ForecastMap]:
    """The forecast map stored beside a colour calibration, or None; CalibrationError naming the file
    when it is there but not a map."""
    if not calibration or not map_path(calibration).is_file():
        return None
    path = map_path(calibration)
    try:
        d = json.loads(path.read_text())
        x, y = [float(v) for v in d["x"]], [float(v) for v in d["y"]]
        ok = d.get("kind") == KIND and len(x) == len(y) > 0 and all(0 <= v <= 1 for v in x + y)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok or any(b < a for a, b in zip(x, x[1:], strict=False)):
        raise CalibrationError(f"{path}: not a forecast map (kind {KIND!r}, x and y: as many values in 0 .. 1, x "
                               "increasing); remake it with `physical calibrate forecast` or delete it")
    return ForecastMap(x, y, int(d.get("n", 0)), str(d.get("fitted_on", "")))


def expected_calibration_error(predicted: Sequence[float], observed: Sequence[bool], bins: int = 5) -> Optional[float]:
    """The reliability bins' |mean predicted - observed rate|, weighted by their share of the items."""
    if not len(predicted):
        return None
    bins_ = reliability(predicted, observed, bins)
    return sum(b["n"] * abs(b["predicted"] - b["observed"]) for b in bins_) / len(predicted)
