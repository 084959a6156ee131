"""Predict, then measure: how well K draws of the channel predict which adversarial images survive
the trip, with every rate's n and 95 % interval.

One run of the real pipeline (generate -> print -> capture: simulate -> align -> classify -> report;
the experiments off) on `--images` photos of ../shared/imagenet-100 (a stratified sample, `images.limit`),
FGSM and BIM at eps 16 (and EOT-BIM with `--eot N`), EfficientNet-Lite0. Printed: the report's table
(Kurakin's measures with intervals, physical success rate, the paired tests) and the predicted survival
(`report.predict_draws` = `--draws`) against the photos: Brier score per attack and for the run, next to
a forecaster that knows only the observed survival rate, and the reliability diagram's points.

The simulated capture draws from the channel the prediction uses (with another seed), so this measures
the machinery and the spread of K draws, not the channel's fidelity to a real camera (issue 12's
calibration work); with real photos (`--from capture` on a printed run) the same report says that.

    python benchmarks/predict.py [--images 16] [--draws 8] [--eot 0] [--out /tmp/physical-predict]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMAGENET_100, setup  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--eot", type=int, default=0, help="also EOT-BIM with this many samples (0: off)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/physical-predict")
    a = ap.parse_args()
    setup(a.threads)
    from physical.runs.checks import from_dict
    from physical.runs.pipeline import run_pipeline
    from physical.rundir import read_json

    src = IMAGENET_100.resolve()
    if not src.is_dir():
        sys.exit(f"{src} not found: this benchmark needs the 100 ImageNet photos")
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    attacks = [{"name": "fgsm", "eps": [16]}, {"name": "bim", "eps": [16]}]
    if a.eot:
        attacks.append({"name": "bim", "eps": [16], "eot": {"samples": a.eot}})
    cfg = from_dict({"run": {"name": "predict", "output": str(out), "device": "cpu"},
                     "images": {"source": str(src), "limit": a.images}, "attacks": attacks,
                     "experiments": {"enabled": False}, "report": {"html": True, "predict_draws": a.draws}})
    t0 = time.time()
    run = run_pipeline(cfg, log=lambda *x: None)
    rep = read_json(run.root / "report" / "report.json")
    print((run.root / "report" / "table.txt").read_text())
    s = rep["survival"]
    print("reliability (predicted survival bin: mean predicted, observed [95 % interval] k/n):")
    for b in s["reliability"]:
        lo, hi = b["ci"]
        print(f"  {b['bin'][0]:.1f}-{b['bin'][1]:.1f}: {100 * b['predicted']:5.1f}  {100 * b['observed']:5.1f} "
              f"[{100 * lo:.1f}-{100 * hi:.1f}] {b['k']}/{b['n']}")
    print(f"\n{len(rep['images'])} images ({len({i['class'] for i in rep['images']})} classes), "
          f"{a.draws} draws per adversarial image; whole run {time.time() - t0:.0f} s; report in {run.root / 'report'}")


if __name__ == "__main__":
    main()
