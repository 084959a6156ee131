"""The cost of one EOT step of every attack that makes a printed artifact (issue 28): one fit step of
uap and patch, one step of targeted BIM, with `eot: {samples: N}` on B images, against the same step
without EOT on B x N images (N plain passes: the model's share of the EOT step), in the same run,
interleaved (`_common.interleaved`), median of the paired per-round ratios. Goal: <= 1.1x.

The channel is the run's default (the phone preset) or `--calibration` (a colour.json, as a lab's
calibrated run); the cell is the default sheet's in the default frame.

    python benchmarks/eot_step.py [--batch 8] [--eot 4] [--rounds 5] [--threads 1] [--calibration colour.json]
        [--device cpu]

On cpu the ratio is of this process's CPU time; on a GPU (`--device cuda`) of wall time, each step
ending with a synchronize.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, load_batch, paired, setup  # noqa: E402

ENTRIES = {  # one step each: a fit of one epoch over exactly one batch, or one BIM step
    "uap": {"name": "uap", "eps": [10], "epochs": 1},
    "patch": {"name": "patch", "epochs": 1},
    "bim -> toaster": {"name": "bim", "eps": [16], "steps": 1, "target": 859},
}


def step(entry: dict, model, x, y, n: int, calibration):
    """One step of `entry`: with EOT N on x, or (n = 0) plain on x repeated N times."""
    from physical.attacks import make_attack
    from physical.runs.checks import from_dict

    e = dict(entry)
    fitted = e["name"] in ("uap", "patch")
    if fitted:
        e["batch"] = len(x)
    if n:
        e["eot"] = {"samples": n}
    capture = {"channel": {"calibration": calibration}} if calibration else {}
    cfg = from_dict({"attacks": [e], "capture": capture, "experiments": {"enabled": False}})
    attack = make_attack(cfg.attacks[0], model, cfg.attacks[0].eps[0], seed=0, cfg=cfg)
    run = (lambda: attack.fit_images(x, y)) if fitted else (lambda: attack(x, y))
    if x.device.type != "cuda":
        return run
    import torch

    return lambda: (run(), torch.cuda.synchronize())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--eot", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calibration", default=None)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    setup(a.threads)
    from physical.models import load_model

    model = load_model("efficientnet_lite0", a.device)
    x, y, where = load_batch(model, a.batch)
    x, y = x.to(a.device), y.to(a.device)
    clock = "cpu" if a.device == "cpu" else "wall"
    xn, yn = x.repeat_interleave(a.eot, 0), y.repeat_interleave(a.eot, 0)
    print(f"{a.batch} images ({where}) on {a.device}, N = {a.eot}, {a.rounds} rounds, {a.threads} thread(s), channel: "
          f"{a.calibration or 'phone preset'}")
    for name, entry in ENTRIES.items():
        fns = {"eot": step(entry, model, x, y, a.eot, a.calibration),
               "plain": step(entry, model, xn, yn, 0, a.calibration)}
        t = interleaved(fns, rounds=a.rounds)
        ratio = paired(t, "plain", "eot", clock)
        print(f"  {name:<15} EOT step {t['eot'][clock + '_median']:.3f} s {clock}, {a.eot} plain passes "
              f"{t['plain'][clock + '_median']:.3f} s: {ratio:.2f}x (wall {paired(t, 'plain', 'eot', 'wall'):.2f}x)")


if __name__ == "__main__":
    main()
