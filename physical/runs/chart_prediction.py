"""What a print-and-camera channel predicts for a printed run, measured as the lab measures it.

The run's sheets are photographed through the channel of ``cfg.capture`` (the simulate stage), the
photos aligned and classified by the run's own stages; then every accepted crop, not only the best
of each cell, is classified by `model` and the figures are pooled over the photos (each photo of a
cell is one more sample). Comparing the figures of a fitted channel (``capture.channel.calibration``)
with those of the photos it was fitted to says whether the simulator, and EOT with it, can be trusted.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from physical import runfiles
from physical.stages.align import align_stage
from physical.models.classify import classify_images
from physical.stages.classify import classify_stage, load_records
from physical.measure.metrics import destruction
from physical.rundir import read_image
from physical.sim.print_camera import simulate_stage


def channel_figures(run, cfg, model, device="cpu", batch: int = 16) -> dict:
    """Simulate, align and classify `run` with `cfg`; pooled figures over every accepted crop:
    {"attacks": {attack label: destruction}, "all": destruction over every attack,
    "clean_top1" / "adv_top1": {"rate", "n"}} (destruction as :func:`physical.measure.metrics.destruction`,
    top-1)."""
    device = torch.device(device)
    simulate_stage(run, cfg, device)
    align_stage(run, cfg)
    classify_stage(run, cfg, device)
    recs = {r["key"]: r for r in load_records(run)}
    aligned = runfiles.load_crops(run)
    assert aligned is not None, "align_stage wrote align/crops.json"
    crops = aligned.accepted()
    preds = classify_images(model, [read_image(run.root / c["path"]) for c in crops], batch)
    by_attack, hits = defaultdict(list), defaultdict(list)
    for c, p in zip(crops, preds, strict=False):
        r = recs[c["item"]]
        hits[c["role"]].append(p["top"][0] == r["label"])
        if c["role"] == "adv":
            by_attack[r["attack_label"]].append(dict(r, pred=dict(r["pred"], photo_adv=p)))
    top1 = {role: {"rate": float(np.mean(h)) if h else float("nan"), "n": len(h)} for role, h in hits.items()}
    return {"attacks": {a: destruction(v, 1) for a, v in sorted(by_attack.items())},
            "all": destruction([r for v in by_attack.values() for r in v], 1),
            "clean_top1": top1.get("clean", {"rate": float("nan"), "n": 0}),
            "adv_top1": top1.get("adv", {"rate": float("nan"), "n": 0})}
