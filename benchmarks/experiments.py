"""How the cost of the experiments grows with their size: images x transformations x target models.

Builds one small run (the real generate and classify stages; FGSM at one eps, so making it is cheap),
then times the experiments stage for every combination of two sizes of each factor, each time from
an empty cache, and once more with the cache in place. Prints seconds, images classified, ms per
image, and each time's ratio to the smallest case (ideal: the product of the factors' ratios).

    python benchmarks/experiments.py                      # 2/4 images, 1/2 strengths, 1/2 targets, CPU
    python benchmarks/experiments.py --images 8 16 --source ../shared/imagenet-100 --device cuda

The photo columns are not part of it (no print/align): they add the same work again per crop.
"""
from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch


def build_run(root: Path, n_images: int, source: str, device: str, batch: int):
    import physical.experiments  # noqa: F401
    from physical.stages.classify import classify_stage
    from physical.config import to_dict
    from physical.runs.checks import from_dict
    from physical.stages.generate import generate_stage
    from physical.rundir import RunDir

    data = {"run": {"name": f"bench{n_images}", "output": str(root), "device": device, "batch_size": batch},
            "images": {"source": source, "limit": n_images}, "attacks": [{"name": "fgsm", "eps": [8, 16]}]}
    cfg = from_dict(data)
    run = RunDir(root / cfg.run.name)
    run.init(to_dict(cfg), 0, device)
    dev = torch.device(device)
    generate_stage(run, cfg, dev)
    run.mark("generate", "done")
    classify_stage(run, cfg, dev)
    run.mark("classify", "done")
    return run, data


def experiment_cfg(data: dict, strengths: int, targets: int):
    from physical.runs.checks import from_dict

    sweeps = {"blur": [1.0, 2.0][:strengths], "jpeg": [70, 30][:strengths], "noise": [0.02, 0.05][:strengths]}
    models = ["efficientnet_lite1"][: targets - 1]
    return from_dict({**data, "experiments": {
        "transformations": {"sweeps": sweeps},
        "defences": {"use": [{"name": "median", "size": 3}, {"name": "noise", "sigma": 0.03}], "adaptive": ["fgsm"]},
        "transfer": {"enabled": targets > 1, "models": models},
        "generalisation": {"enabled": True, "max_images": 64, "random_draws": 2}}})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs=2, default=[2, 4])
    ap.add_argument("--source", default="samples", help="samples (8 photos) or a folder with labels.csv")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from physical.stages.experiments import experiments_stage
    from physical.models import load_model
    from physical.rundir import read_json

    dev = torch.device(args.device)
    for m in ("efficientnet_lite0", "efficientnet_lite1"):  # load and warm up outside the timings
        load_model(m, dev)(torch.rand(2, 3, 224, 224, device=dev))
    root = Path(tempfile.mkdtemp(prefix="physical-bench-"))
    try:
        runs = {n: build_run(root, n, args.source, args.device, args.batch) for n in args.images}
        print(f"device {args.device}, {args.threads} CPU threads, batch {args.batch}; 2 attacks (fgsm eps 8, 16); "
              "defences: median, noise (adaptive fgsm, EOT 4); generalisation on; sizes: images x strengths per "
              "transformation (3 transformations) x target models")
        head = f"{'images':>6} {'strengths':>9} {'models':>6} {'seconds':>8} {'classified':>10} {'ratio':>6} " \
               f"{'size ratio':>10}  {'transf.':>7} {'defences':>8} {'transfer':>8} {'general.':>8} {'cached s':>8}"
        print(head)
        print("-" * len(head))
        base = None
        for n, s, t in itertools.product(args.images, (1, 2), (1, 2)):
            run, data = runs[n]
            cfg = experiment_cfg(data, s, t)
            shutil.rmtree(run.root / "experiments", ignore_errors=True)
            t0 = time.perf_counter()
            summary = experiments_stage(run, cfg, dev, log=None)
            secs = time.perf_counter() - t0
            parts = []
            for name in ("transformations", "defences", "transfer", "generalisation"):
                p = run.root / "experiments" / f"{name}.json"
                parts.append(f"{read_json(p)['seconds']:.1f}" if p.is_file() else "-")
            t0 = time.perf_counter()
            again = experiments_stage(run, cfg, dev, log=None)
            cached = time.perf_counter() - t0
            assert again["classified"] == 0
            size = n * s * t
            if base is None:
                base = (secs, size)
            print(f"{n:>6} {s:>9} {t:>6} {secs:>8.2f} {summary['classified']:>10} {secs / base[0]:>6.2f} "
                  f"{size / base[1]:>10.2f}  {parts[0]:>7} {parts[1]:>8} {parts[2]:>8} {parts[3]:>8} {cached:>8.2f}")
        print("ratio: time / time of the smallest case; size ratio: images x strengths x models / the smallest's;\n"
              "per-section seconds follow. Transformations grow with images x strengths, transfer with images x "
              "target models, defences (with their adaptive attacks) with images only, generalisation with images^2;\n"
              "'classified' counts images classified (attack steps not included); 'cached s' is the same stage run "
              "again: everything comes from the run directory's cache.")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
