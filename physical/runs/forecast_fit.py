"""Fitting the survival forecast map of a calibrated channel on that channel's own simulated photos.

A printed run's sheets are photographed by physical's simulator with the calibrated channel (whole
photos: page, pose, optics, light, sensor, JPEG), aligned and classified by the run's own stages, in
a scratch copy of the run; each adversarial image's K-draw survival fraction
(`physical.measure.survival`) is then regressed isotonically on whether it survived in those photos
(`physical.measure.forecast`). No real photo enters the fit, so the map can be judged on real ones.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from physical.errors import ConfigError
from physical.measure.forecast import ForecastMap, fit_forecast, save_forecast
from physical.measure.survival import predict_items, works
from physical.rundir import RunDir
from physical.sim.print_camera import simulate_stage
from physical.stages.align import align_stage
from physical.stages.classify import classify_stage, load_records


def scored(records: list[dict]) -> list[dict]:
    """The records whose survival means something: a photo, the clean image right, the attack working
    digitally."""
    return [r for r in records if works(r) is not None and works(r, "digital_adv")
            and r["pred"]["digital_clean"]["top"][0] == r["label"]]


def simulated_outcomes(run: RunDir, cfg, device, draws: int, rounds: int = 1) -> tuple[list[float], list[bool]]:
    """(draws' survival fraction, survived in the simulated photo) per scored adversarial image and round."""
    fractions: list[float] = []
    observed: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="forecast-", dir=run.root.parent) as tmp:
        for r in range(rounds):
            sim = RunDir(Path(tmp) / f"round{r}")
            for part in ("generate", "print"):
                shutil.copytree(run.root / part, sim.root / part)
            cfg.run.seed += r  # another draw of the simulated photos per round
            try:
                simulate_stage(sim, cfg, device)
                align_stage(sim, cfg)
                classify_stage(sim, cfg, device)
                recs = scored(load_records(sim))
                fractions += predict_items(sim, cfg, device, recs, draws) if recs else []
            finally:
                cfg.run.seed -= r
            observed += [bool(works(x)) for x in recs]
    return fractions, observed


def fit_run_forecast(run: RunDir, cfg, device, draws: int, rounds: int = 1) -> tuple[ForecastMap, Path]:
    """Fit and store the forecast map of `cfg`'s calibrated channel from `run`'s printed sheets."""
    cal = cfg.capture.channel.calibration
    if not cal:
        raise ConfigError("capture.channel.calibration: a forecast map belongs to a calibrated channel; calibrate "
                          "(`physical calibrate colour`) and set it first")
    if not (run.root / "print" / "sheets.pdf").is_file():
        raise FileNotFoundError(f"{run.root}: no printed sheets; run `physical run CONFIG --until print` first")
    fractions, observed = simulated_outcomes(run, cfg, torch.device(device), draws, rounds)
    try:
        fmap = fit_forecast(fractions, observed, f"{len(fractions)} adversarial images of run {run.root.name} in "
                                                 f"{rounds} round(s) of photos simulated with {Path(cal).name}")
    except ValueError as e:
        raise ConfigError(f"images: {e}; give the run more images or attacks") from None
    return fmap, save_forecast(cal, fmap)
