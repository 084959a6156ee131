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
from _common import interleaved, load_batch, setup  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--eot", type=int, default=8, help="EOT samples N")
    ap.add_argument("--eot-steps", type=int, default=1, help="EOT steps timed (vs N x as many plain steps)")
    ap.add_argument("--eps", type=float, default=16)
    ap.add_argument("--rounds", type=int, default=3)
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
    # on the CPU the process's CPU time is the steadier clock on a shared machine (it is what the
    # ratios use); on an accelerator only wall time means anything
    clocks = ["cpu", "wall"] if dev.type == "cpu" else ["wall"]
    main_clock = clocks[0]
    rows = [k for k in fns if k.startswith(("bare forward+backward", "physical BIM", "physical PGD", "torchattacks"))
            and "passes" not in k and "steps" not in k]
    print(f"\n{'':26s}" + "".join(f"{'img*steps/s (' + c + ')':>24s}" for c in clocks) + f"{'wall median':>14s}")
    rate = {c: {} for c in clocks}
    for name in rows:
        for c in clocks:
            rate[c][name] = b * s / t[name][c]
        print(f"{name:26s}" + "".join(f"{rate[c][name]:24.2f}" for c in clocks) + f"{b * s / t[name]['wall_median']:14.2f}")
    print()
    for c in clocks:
        bare_rate = rate[c]["bare forward+backward"]
        for lib in ("BIM", "PGD"):
            ours = rate[c][f"physical {lib}"]
            line = f"[{c:4s}] physical {lib}: {ours / bare_rate:.3f}x the bare loop (target >= 0.9)"
            if f"torchattacks {lib}" in rate[c]:
                line += f", {ours / rate[c][f'torchattacks {lib}']:.3f}x torchattacks (target >= 1.0)"
            print(line)
    e_name, p_name, b_name = (f"physical EOT-BIM N={n}, {k} step(s)", f"physical BIM, {n * k} steps",
                              f"bare forward+backward, {n * k} passes")
    for c in clocks:
        te, tp, tb = t[e_name][c], t[p_name][c], t[b_name][c]
        print(f"[{c:4s}] EOT-BIM N={n}: {k} step(s) on {b} images ({b * n} channel samples a step, one batch) "
              f"{te:.2f} s; {n * k} plain BIM steps {tp:.2f} s; {n * k} bare passes {tb:.2f} s")
        print(f"[{c:4s}] EOT cost: {te / tp:.3f}x {n} plain BIM steps, {te / tb:.3f}x {n} bare forward+backward "
              f"passes (target <= 1.2); {te / t[f'bare forward+backward on {b * n} images, {k} pass(es)'][c]:.3f}x "
              f"a bare pass over the same {b * n} images (the channel's own share)")
    print(f"\n(figures: the least disturbed of {a.rounds} round-robin rounds; {main_clock} time is the steadier clock here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
