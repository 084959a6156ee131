"""Attack throughput on EfficientNet-Lite0, in one run, on the same batch and step count:

- images x steps per second of BIM and PGD from `physical`, from torchattacks, and of a bare
  forward + backward loop (the limit: the gradient w.r.t. the input, nothing else);
- the cost of EOT with N samples per step relative to N plain steps (and to N bare passes).

Targets (issue #4): >= 1.0x torchattacks and >= 0.9x the bare loop; EOT(N) <= 1.2x N plain passes.
Every figure is the least disturbed of `--rounds` round-robin repetitions on this (shared) machine.

    python benchmarks/attacks.py [--batch 8] [--steps 5] [--eot 8] [--rounds 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, load_batch, paired, setup  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--eot", type=int, default=8, help="EOT samples N")
    ap.add_argument("--eot-steps", type=int, default=2, help="EOT steps timed (vs N x as many plain steps)")
    ap.add_argument("--eps", type=float, default=16)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-allocator", action="store_true", help="leave glibc's malloc as it is (physical.runtime)")
    a = ap.parse_args(argv)
    setup(a.threads, allocator=not a.no_allocator)

    from physical.attacks import BIM, PGD
    from physical.attacks.eot import CropChannel, cell_px_for
    from physical.channel import Channel
    from physical.config import Config, EOTConfig
    from physical.models import load_model

    dev = torch.device(a.device)
    model = load_model("efficientnet_lite0", dev)
    x, y, where = load_batch(model, a.batch)
    x, y = x.to(dev), y.to(dev)
    b, s, n = len(x), a.steps, a.eot
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    print(f"EfficientNet-Lite0 on {dev} ({torch.get_num_threads()} threads), batch {b} x 224 x 224 from {where}; "
          f"{s} steps, eps {a.eps:g}, alpha 1 (0..255 units); torch {torch.__version__}; "
          f"CPU allocator tuned: {not a.no_allocator}")

    def bare(steps=s):
        for _ in range(steps):
            xx = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xx), y), xx)
        sync()

    fns = {
        "bare forward+backward": bare,
        "physical BIM": lambda: (BIM(model, a.eps, alpha=1, steps=s)(x, y), sync()),
        "physical PGD": lambda: (PGD(model, a.eps, alpha=1, steps=s, random_start=True)(x, y), sync()),
    }
    try:
        import torchattacks

        fns["torchattacks BIM"] = lambda: (torchattacks.BIM(model, eps=a.eps / 255, alpha=1 / 255, steps=s)(x, y), sync())
        fns["torchattacks PGD"] = lambda: (torchattacks.PGD(model, eps=a.eps / 255, alpha=1 / 255, steps=s,
                                                            random_start=True)(x, y), sync())
    except ImportError:
        print("torchattacks is not installed (pip install --no-deps torchattacks==3.5.1): its rows are left out")

    cfg = Config()
    channel = CropChannel(Channel(cfg.capture.channel).to(dev), cell_px_for(cfg), EOTConfig().misalign)
    eot = EOTConfig(samples=n)
    k = a.eot_steps
    fns[f"physical EOT-BIM N={n}, {k} step(s)"] = lambda: (BIM(model, a.eps, alpha=1, steps=k, eot=eot, channel=channel)(x, y), sync())
    fns[f"physical BIM, {n * k} steps"] = lambda: (BIM(model, a.eps, alpha=1, steps=n * k)(x, y), sync())
    fns[f"bare forward+backward, {n * k} passes"] = lambda: bare(n * k)
    xn, yn = x.repeat_interleave(n, 0), y.repeat_interleave(n, 0)

    def bare_big(steps=k):  # the model's share of an EOT step: the same B x N images, no channel
        for _ in range(steps):
            xx = xn.detach().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xx), yn), xx)
        sync()

    fns[f"bare forward+backward on {b * n} images, {k} pass(es)"] = bare_big

    t = interleaved(fns, rounds=a.rounds)
    # wall time is what counts; on the CPU the process's CPU time is shown beside it (a machine shared
    # with other jobs inflates it less). Ratios are medians of per-round pairs measured back to back.
    clocks = ["wall", "cpu"] if dev.type == "cpu" else ["wall"]
    rows = [k for k in fns if k in ("bare forward+backward", "physical BIM", "physical PGD", "torchattacks BIM",
                                    "torchattacks PGD")]
    print(f"\nimages x steps per second (best of {a.rounds} rounds)")
    print(f"{'':24s}" + "".join(f"{c:>10s}" for c in clocks) + f"{'wall median':>14s}")
    for name in rows:
        print(f"{name:24s}" + "".join(f"{b * s / t[name][c]:10.2f}" for c in clocks) + f"{b * s / t[name]['wall_median']:14.2f}")
    print("\nratios (median of paired rounds)")
    for lib in ("BIM", "PGD"):
        ours = f"physical {lib}"
        for c in clocks:
            line = f"  [{c:4s}] physical {lib}: {paired(t, ours, 'bare forward+backward', c):.3f}x the bare loop (target >= 0.9)"
            if f"torchattacks {lib}" in fns:
                line += f", {paired(t, ours, f'torchattacks {lib}', c):.3f}x torchattacks (target >= 1.0)"
            print(line)
    e_name, p_name, b_name = (f"physical EOT-BIM N={n}, {k} step(s)", f"physical BIM, {n * k} steps",
                              f"bare forward+backward, {n * k} passes")
    big = f"bare forward+backward on {b * n} images, {k} pass(es)"
    print(f"\nEOT-BIM, N={n}: {k} step(s) on {b} images = {b * n} channel samples a step, one batch "
          f"(best wall {t[e_name]['wall']:.2f} s; {n * k} plain BIM steps {t[p_name]['wall']:.2f} s; "
          f"{n * k} bare passes {t[b_name]['wall']:.2f} s; one bare pass over the {b * n} images {t[big]['wall']:.2f} s)")
    for c in clocks:
        print(f"  [{c:4s}] EOT cost: {1 / paired(t, e_name, p_name, c):.3f}x {n} plain BIM steps, "
              f"{1 / paired(t, e_name, b_name, c):.3f}x {n} bare forward+backward passes (target <= 1.2); "
              f"{1 / paired(t, e_name, big, c):.3f}x a bare pass over the same {b * n} images (the channel's share)")
    print(f"  least disturbed runs (best wall times): EOT cost {t[e_name]['wall'] / t[p_name]['wall']:.3f}x {n} plain "
          f"BIM steps, {t[e_name]['wall'] / t[b_name]['wall']:.3f}x {n} bare passes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
