"""The cost of a run as its work grows, on 1 and 2 ranks: so a sweep can be sized before it starts.

For every size of images (from ../shared/imagenet-100, repeated with mirror images and shifted crops
beyond its 100 photos; scikit-image's photos, augmented the same way, when it is not there) and
every number of ranks, one run of `physical run --until STAGE` (generate by default: the stage whose
cost grows with images x attacks x eps x models) in a fresh run directory, through torchrun for
2 ranks. Prints the stages' seconds (as the run's manifest records them; wall adds the processes'
start), seconds per image x attack x eps x model, and the scaling efficiency (stage time on 1 rank /
(K x stage time on K ranks); 1.0 is perfect). On this 2-core machine two
ranks share the same cores, so the efficiency measures overhead rather than speed-up; on a machine
with a core or a GPU per rank it measures the speed-up.

    python benchmarks/sweep.py                       # 4 and 8 images, fgsm + bim, eps 4, Lite0; 1 and 2 ranks
    python benchmarks/sweep.py --full                # 16, 64, 256 images, fgsm, bim, pgd, eps 4 and 16, Lite0 + Lite1
    python benchmarks/sweep.py --images 16 64 --attacks bim --eps 8 16 --models efficientnet_lite0 --ranks 1 2 4
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMAGENET_100  # noqa: E402


def image_folder(n: int, root: Path) -> Path:
    """A folder of n labelled photos (labels.csv): the shared ImageNet photos, then their mirror images
    and shifted crops, so that no two files are the same."""
    import cv2

    from physical.data.images import load_images

    src = IMAGENET_100.resolve()
    imgs = load_images(str(src), 0) if src.is_dir() else load_images("samples", 0)
    out = root / f"images{n}"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "class_index"])
        for i in range(n):
            im = imgs[i % len(imgs)]
            k = i // len(imgs)
            rgb = im.rgb[:, ::-1] if k % 2 else im.rgb
            if k >= 2:  # a shifted crop
                h, w_ = rgb.shape[:2]
                d = int(0.03 * k * min(h, w_)) % max(1, min(h, w_) // 4)
                rgb = rgb[d:, d:]
            name = f"img{i:04d}.png"
            cv2.imwrite(str(out / name), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
            w.writerow([name, "" if im.label is None else im.label])
    return out


def one_run(root: Path, folder: Path, n: int, ranks: int, a) -> dict:
    name = f"n{n}_r{ranks}"
    cfg = {"run": {"name": name, "output": str(root / "runs"), "batch_size": a.batch_size, "device": a.device},
           "images": {"source": str(folder), "limit": n}, "models": a.models,
           "attacks": [{"name": at, "eps": a.eps, **({"steps": a.steps} if a.steps and at != "fgsm" else {})}
                       for at in a.attacks],
           "experiments": {"enabled": False}}
    path = root / f"{name}.yaml"
    path.write_text(json.dumps(cfg))
    args = ["-m", "physical", "run", str(path), "--until", a.until]
    cmd = [sys.executable, *args] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", *args]
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, a.threads // ranks)))
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode:
        said = [ln for ln in (r.stdout + r.stderr).splitlines() if "error" in ln.lower() or "Error" in ln][:8]
        raise SystemExit(f"run {name} failed:\n" + "\n".join(said or [r.stderr[-2000:]]))
    stages = json.loads((root / "runs" / name / "manifest.json").read_text())["stages"]
    secs = sum(stages[s]["seconds"] for s in stages if stages[s].get("state") == "done" and "seconds" in stages[s])
    return {"wall": wall, "stages": secs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="images 16 64 256, attacks fgsm bim pgd, eps 4 16, Lite0 + Lite1")
    ap.add_argument("--images", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--attacks", nargs="+", default=["fgsm", "bim"])
    ap.add_argument("--eps", type=float, nargs="+", default=[4.0])
    ap.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    ap.add_argument("--steps", type=int, default=None, help="steps of the iterative attacks (default: Kurakin's)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--until", default="generate", help="last stage of each run (generate: the part that grows)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in all (split between the ranks)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    if a.full:
        a.images, a.attacks, a.eps = [16, 64, 256], ["fgsm", "bim", "pgd"], [4.0, 16.0]
        a.models = ["efficientnet_lite0", "efficientnet_lite1"]
    units = len(a.attacks) * len(a.eps) * len(a.models)
    print(f"runs until {a.until}: attacks {a.attacks}, eps {a.eps}, models {a.models}, on {a.device}; "
          f"{a.threads} CPU threads in all")
    print(f"{'images':>7s}{'ranks':>6s}{'stage s':>10s}{'wall s':>9s}{'s per image x attack x eps x model':>38s}"
          f"{'efficiency':>12s}")
    with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
        root = Path(tmp)
        for n in a.images:
            folder = image_folder(n, root)
            base = None
            for k in a.ranks:
                r = one_run(root, folder, n, k, a)
                base = r["stages"] if k == 1 else base
                eff = f"{base / (k * r['stages']):12.2f}" if base and k > 1 else f"{'-':>12s}"
                print(f"{n:7d}{k:6d}{r['stages']:10.1f}{r['wall']:9.1f}{r['stages'] / (n * units):38.3f}{eff}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
