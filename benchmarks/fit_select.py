"""Choosing a fitted artifact's settings on fit data only (issue 28): the fit folder is split by a
seeded shuffle into images to fit on and images held out; every setting of `--grid` is fitted on the
first with EOT through the calibrated channel and scored on the held-out ones by the calibrated
channel's draws (the report's prediction), against its control (random signs, noise patch). No
photo and no image of the unseen half is read: what is chosen here is then measured once, on the
unseen half, by benchmarks/printed.py.

Score (declared before any fit): the predicted success on the held-out images, averaged over
`--draws` draws: UAP, fooling (top-1 differs from the clean image's digital top-1); patch, targeted
success. The setting with the highest score is chosen; a tie goes to the fewer steps.

    python benchmarks/fit_select.py --fit DIR --calibration colour.json [--attack uap] [--eps 10]
        [--grid '[{"epochs": 320}, {"epochs": 320, "clip": 3}]'] [--held 20] [--draws 8] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_batch, setup  # noqa: E402
from physical.measure.stats import wilson  # noqa: E402

BASE = {"uap": {"name": "uap", "eot": {"samples": 4}},
        "patch": {"name": "patch", "fraction": 0.1, "target": 859, "eot": {"samples": 4}}}


@torch.no_grad()
def score(model, attack, channel, x, y, art, draws: int) -> float:
    """The mean predicted success of artifact `art` on images x (labels y: the clean digital top-1),
    through `channel` (the calibrated channel's aligned crop)."""
    from physical.measure.survival import predict_seed, survival_probabilities

    placement = attack.placement(len(x), torch.Generator().manual_seed(7))
    adv = (attack.apply(x, art.to(x.device), placement) * 255).round() / 255
    t = torch.full_like(y, int(attack.target) if attack.target is not None else -1)
    gen = torch.Generator().manual_seed(predict_seed(0))
    p = survival_probabilities(model, channel, adv, y, t, draws, gen, 16)
    return float(p.mean())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--fit", required=True, help="the fit half: a labelled image folder")
    p.add_argument("--calibration", required=True)
    p.add_argument("--attack", default="uap", choices=sorted(BASE))
    p.add_argument("--eps", type=float, default=10)
    p.add_argument("--grid", default='[{"epochs": 320}]', help="JSON list of settings added to the entry")
    p.add_argument("--held", type=int, default=20, help="fit images held out to score on")
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    setup(a.threads)
    from physical.attacks import make_attack
    from physical.measure.survival import crop_channel
    from physical.models import load_model, predict
    from physical.runs.checks import from_dict

    model = load_model("efficientnet_lite0", a.device)
    x, y, where = load_batch(model, 10**6, a.fit)
    x, y = x.to(a.device), y.to(a.device)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).to(a.device)
    fit, held = order[a.held:], order[: a.held]
    top, _ = predict(model, x[held], 16)
    clean_top = torch.as_tensor(top[:, 0]).to(a.device)
    print(f"{where}: fit on {len(fit)}, scored on {len(held)} held out, {a.draws} draws of {a.calibration}")
    rows = []
    for setting in json.loads(a.grid):
        entry = {**BASE[a.attack], "eps": [a.eps if a.attack == "uap" else 255], "batch": 16, **setting}
        cfg = from_dict({"attacks": [entry], "capture": {"channel": {"calibration": a.calibration}},
                         "experiments": {"enabled": False}})
        attack = make_attack(cfg.attacks[0], model, cfg.attacks[0].eps[0], seed=0, cfg=cfg)
        t0 = time.time()
        art = attack.fit_images(x[fit], y[fit])
        secs = time.time() - t0
        control = attack.control_artifact(art, torch.Generator().manual_seed(1))
        channel = crop_channel(cfg, a.device)
        s, c = (score(model, attack, channel, x[held], clean_top, v, a.draws) for v in (art, control))
        rows.append((s, attack.total_steps(len(fit)), setting))
        lo, hi = wilson(s * len(held), len(held)) or (0.0, 0.0)
        print(f"  {json.dumps(setting):<50} {attack.total_steps(len(fit)):>5} steps {secs:6.0f} s: predicted "
              f"{s:.2f} [{lo:.2f}, {hi:.2f}], control {c:.2f}", flush=True)
    best = max(rows, key=lambda r: (r[0], -r[1]))
    print(f"chosen: {json.dumps(best[2])} (predicted {best[0]:.2f} on the held-out fit images)")


if __name__ == "__main__":
    main()
