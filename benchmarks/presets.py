"""The photo-clean cost of each channel preset: top-1 of the clean images digitally and from
simulated photos (print, photograph with the preset's channel, align, classify), on ImageNet photos.

Kurakin et al. (2016) lost about 5 points of top-1 with a phone (Inception v3: 85.3 -> 79.8 % on
clean images photographed, FGSM eps 16 set).

    python benchmarks/presets.py [--images 100] [--presets phone webcam hurried] [--out /tmp/physical-presets]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMAGENET_100, setup  # noqa: E402
from fidelity_tables import figures  # noqa: E402
from physical.measure.stats import wilson  # noqa: E402


def config(root: Path, name: str, images: str, limit: int, preset: str):
    from physical.runs.checks import from_dict

    return from_dict({
        "run": {"name": name, "output": str(root), "seed": 0, "device": "cpu"},
        "models": ["efficientnet_lite0"], "images": {"source": images, "limit": limit},
        "attacks": [{"name": "fgsm", "eps": [16]}],
        "capture": {"source": "simulate", "channel": {"preset": preset}}, "report": {"html": False},
    }, root)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--presets", nargs="+", default=["phone", "webcam", "hurried"])
    p.add_argument("--out", default="/tmp/physical-presets")
    a = p.parse_args()
    setup()
    from physical.runs.pipeline import run_pipeline

    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    images = str(IMAGENET_100.resolve()) if IMAGENET_100.is_dir() else "samples"
    t0 = time.time()
    run_pipeline(config(out, "base", images, a.images, "phone"), until="print", log=lambda *a: None)
    print(f"generated and printed {a.images} images ({images}) in {time.time() - t0:.0f} s", flush=True)
    print("preset     digital clean top-1        photo clean top-1          cost (points)   FGSM eps 16 destruction")
    for preset in a.presets:
        t = time.time()
        shutil.copytree(out / "base", out / preset)
        run_pipeline(config(out, preset, images, a.images, preset), from_stage="capture", until="classify",
                     log=lambda *a: None)
        f = figures(out / preset)
        d, c, x = f["digital clean top-1"], f["photo clean top-1"], f["fgsm_eps16"]

        def fmt(v):
            lo, hi = wilson(v["k"], v["n"]) or (float("nan"), float("nan"))
            return f"{v['k'] / max(v['n'], 1):.2f} [{lo:.2f}, {hi:.2f}] ({v['n']})"

        cost = 100 * (d["k"] / max(d["n"], 1) - c["k"] / max(c["n"], 1))
        print(f"{preset:<10} {fmt(d):<26} {fmt(c):<26} {cost:>8.1f}        {fmt(x)}   ({time.time() - t:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
