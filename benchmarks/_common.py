"""Shared pieces of the benchmarks: images, timing. Benchmarks print figures and ratios against a
reference measured in the same run; they are never unit tests."""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

# the 100 ImageNet validation photos beside the checkout; PHYSICAL_IMAGENET_100 names another copy
IMAGENET_100 = Path(os.environ.get("PHYSICAL_IMAGENET_100") or Path(__file__).resolve().parents[1] / ".." / "shared" / "imagenet-100")


def setup(threads: int = 2, allocator: bool = True) -> None:
    """Threads, and the CPU allocator setting the generate stage uses (physical.runtime)."""
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if allocator:
        from physical.runtime import tune_cpu_allocator

        tune_cpu_allocator()


def load_batch(model, n: int, source: str | None = None, correct_only: bool = False):
    """n images at the model's input size as [0,1] tensors with their labels, from ../shared/imagenet-100
    when it is there (true labels), else scikit-image's photos with flips and shifted crops (labels =
    the clean top-1). With correct_only, only images the model gets right (top-1) are kept."""
    from physical.data.images import load_images
    from physical.models import predict, preprocess, to_tensor

    folder = Path(source) if source else IMAGENET_100.resolve()
    if folder.is_dir():
        imgs = load_images(str(folder), 0)
        rgb = [preprocess(i.rgb, model.input_size, model.resize_ratio) for i in imgs]
        labels = [i.label for i in imgs]
        where = f"{folder} ({len(imgs)} photos)"
    else:
        imgs = load_images("samples", 0)
        rgb, labels = [], []
        k = 0
        while len(rgb) < 4 * n:  # flips and shifted crops of the few photos scikit-image ships
            for i in imgs:
                r = preprocess(i.rgb, int(model.input_size * (1.15 + 0.1 * (k % 3))), model.resize_ratio)
                o = (k * 7) % (r.shape[0] - model.input_size + 1)
                r = r[o : o + model.input_size, o : o + model.input_size]
                rgb.append(np.ascontiguousarray(r[:, ::-1] if k % 2 else r))
                labels.append(None)
            k += 1
        where = "scikit-image samples (augmented; labels = clean top-1)"
    x = to_tensor(np.stack(rgb), "cpu")
    top, _ = predict(model, x)
    y = torch.tensor([lab if lab is not None else int(top[j, 0]) for j, lab in enumerate(labels)])
    if correct_only:
        keep = torch.from_numpy(top[:, 0]) == y
        x, y = x[keep], y[keep]
    return x[:n].contiguous(), y[:n].contiguous(), where


def interleaved(fns: dict, rounds: int = 3, warmup: int = 1) -> dict[str, dict]:
    """Time every function `rounds` times, round-robin, alternating the order every round (a busy
    machine slows neighbours alike). Two clocks: wall time, and this process's CPU time.

    Per function: "wall" / "cpu" = the minimum (the least disturbed run), "walls" / "cpus" = the
    per-round times, aligned by round, for paired ratios (see `paired`)."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            w, c = time.perf_counter(), time.process_time()
            fns[k]()
            cpu[k].append(time.process_time() - c)
            wall[k].append(time.perf_counter() - w)
    return {k: {"wall": min(wall[k]), "wall_median": statistics.median(wall[k]), "cpu": min(cpu[k]),
                "cpu_median": statistics.median(cpu[k]), "walls": wall[k], "cpus": cpu[k]} for k in fns}


def paired(t: dict, a: str, b: str, clock: str, scale: float = 1.0) -> float:
    """Median over rounds of time(b) / time(a) x scale: how many times faster a is than b, each
    round's pair measured back to back (steadier than a ratio of minima on a shared machine)."""
    key = clock + "s"
    return statistics.median(tb / ta * scale for ta, tb in zip(t[a][key], t[b][key]))
