"""Attacks beyond Kurakin's on EfficientNet-Lite0, on ../shared/imagenet-100 (100 photos):

- uap: one universal perturbation (eps 10) fitted on half of the photos (SGD-UAP with the default
  `augment`: fresh random crops and mirrors of the fit photos every step), fooling rate
  (top-1 changes from the clean top-1) on the fitted and on the unseen half, against a random-sign
  perturbation of the same eps; also after one draw of the shared print-and-camera channel per image
  (the EOT view of a printed, photographed, aligned cell). Target: unseen >= 50 % and >= 3x random.
- patch: a targeted patch (toaster, 10 % of the image) fitted on the same half with EOT over place,
  scale and angle; targeted success on the fitted and the unseen half at random places (`--patch-draws`
  draws of places, pooled), against a noise patch of the same size, digital and after the channel.
  Target: >= 80 % digital on the unseen. `--patch-holdout K` is for choosing settings: it fits on the
  fit half less K photos and measures those K instead of the unseen half.
- square: Square Attack, eps 16, 1,000 queries, on photos Lite0 gets right; success rate and queries
  per success, against torchattacks' Square on the same photos, budget and p_init.
  Target: >= 95 % success.

Rates carry n and a 95 % Wilson interval. Every part is time-boxed by its own size options.

    python benchmarks/beyond.py [--uap-epochs 20] [--patch-epochs 40] [--square-images 100] [--only uap,patch,square]
        [--patch-draws 2] [--patch-lr 0.1] [--patch-augment 0] [--patch-schedule cosine] [--patch-holdout 0]
        [--patch-batch 16] [--patch-scale 0.1] [--patch-rotation 10]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_batch, setup  # noqa: E402


def fmt(hits: int, n: int) -> str:
    from physical.report.beyond import rate

    r = rate(int(hits), int(n))
    if r["rate"] is None:
        return "- (n 0)"
    return f"{100 * r['rate']:5.1f} % [{100 * r['ci'][0]:.0f}, {100 * r['ci'][1]:.0f}] (n {n})"


def logits(model, x, bs=32):
    with torch.no_grad():
        return torch.cat([model(x[i : i + bs]) for i in range(0, len(x), bs)])


def top1(model, x, bs=32):
    return logits(model, x, bs).argmax(1)


def channel_view(x, seed):
    """One draw per image of the shared channel as EOT sees a cell (printed, photographed, aligned)."""
    from physical.channel.crop import CropChannel, cell_px_for
    from physical.channel.core import Channel
    from physical.config import Config

    cc = CropChannel(Channel(), cell_px_for(Config()))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return torch.cat([cc(x[i : i + 16], cc.sample(len(x[i : i + 16]), generator=g))[0] for i in range(0, len(x), 16)])


def q8(x):
    return (x * 255).round() / 255


def entry(d):
    from physical.runs.checks import from_dict

    cfg = from_dict({"attacks": [d]})
    return cfg.attacks[0], cfg


def bench_uap(model, x, y, a):
    from physical.attacks import make_attack

    ae, cfg = entry({"name": "uap", "eps": [a.uap_eps], "fit": 0.5, "epochs": a.uap_epochs, "batch": 16})
    uap = make_attack(ae, model, a.uap_eps, seed=0, cfg=cfg)
    fit, unseen = uap.split(len(x))
    t0 = time.time()
    delta = uap.fit_images(x[fit], y[fit])
    secs = time.time() - t0
    rand = uap.control_artifact(delta, torch.Generator().manual_seed(1))
    clean = top1(model, x)
    clean_ch = top1(model, channel_view(x, 7))
    print(f"\nuap: eps {a.uap_eps:g}, fitted on {len(fit)} photos in {secs:.0f} s ({uap.total_steps(len(fit))} steps of 16)")
    res = {}
    for name, art in (("uap", delta), ("random", rand)):
        adv = q8(uap.apply(x, art))
        pred, pred_ch = top1(model, adv), top1(model, channel_view(adv, 7))
        for split, idx in (("fit", fit), ("unseen", unseen)):
            f = (pred[idx] != clean[idx]).sum().item()
            fc = (pred_ch[idx] != clean_ch[idx]).sum().item()
            res[(name, split)] = f / len(idx)
            print(f"  {name:<7} {split:<7} fooling digital {fmt(f, len(idx))}   after the channel {fmt(fc, len(idx))}")
    ratio = res[("uap", "unseen")] / max(res[("random", "unseen")], 1e-9)
    print(f"  unseen: uap / random = {ratio:.1f}x (target >= 50 % and >= 3x)")


def bench_patch(model, x, y, a):
    from physical.attacks import make_attack

    ae, cfg = entry({"name": "patch", "fraction": a.patch_fraction, "fit": 0.5, "epochs": a.patch_epochs,
                     "batch": a.patch_batch, "lr": a.patch_lr, "augment": a.patch_augment, "schedule": a.patch_schedule,
                     "scale": a.patch_scale, "rotation_deg": a.patch_rotation})
    p = make_attack(ae, model, 255, seed=0, cfg=cfg)
    fit, unseen = p.split(len(x))
    if a.patch_holdout:  # choosing settings: fit on part of the fit half, measure the rest; the unseen half stays unseen
        order = fit[torch.randperm(len(fit), generator=torch.Generator().manual_seed(3))]
        fit, unseen = order[a.patch_holdout :].sort().values, order[: a.patch_holdout].sort().values
    t0, c0 = time.time(), time.process_time()
    patch = p.fit_images(x[fit], y[fit])
    secs, cpu = time.time() - t0, time.process_time() - c0
    print(f"\npatch: target {p.target}, {a.patch_fraction:g} of the image ({p.side} px), fitted on {len(fit)} photos "
          f"in {secs:.0f} s wall, {cpu:.0f} s CPU ({p.total_steps(len(fit))} steps of {a.patch_batch}, lr {a.patch_lr:g} "
          f"{a.patch_schedule}, augment {a.patch_augment:g}, EOT scale +-{a.patch_scale:g}, angle +-{a.patch_rotation:g} deg)")
    ctl = p.control_artifact(patch, torch.Generator().manual_seed(1))
    held = "held-out" if a.patch_holdout else "unseen"
    for split, idx in (("fitted", fit), (held, unseen)):
        keep = idx[y[idx] != p.target]
        total, prob = {}, {}
        for draw in range(a.patch_draws):
            place = p.placement(len(keep), torch.Generator().manual_seed(100 + draw))
            for name, art in (("patch", patch), ("control", ctl)):
                adv = q8(p.apply(x[keep], art, place))
                out = logits(model, adv)
                s = (out.argmax(1) == p.target).sum().item()
                prob.setdefault(name, []).append(out.softmax(1)[:, p.target])
                sc = (top1(model, channel_view(adv, 11 + draw)) == p.target).sum().item() if a.patch_channel else 0
                t = total.setdefault(name, [0, 0, 0])
                t[0], t[1], t[2] = t[0] + s, t[1] + sc, t[2] + len(keep)
                print(f"  places {draw}: {name:<8} {split:<8} targeted success digital {fmt(s, len(keep))}"
                      + (f"   after the channel {fmt(sc, len(keep))}" if a.patch_channel else ""))
        for name, (s, sc, n) in total.items():
            pr = torch.cat(prob[name])
            print(f"  pooled:   {name:<8} {split:<8} targeted success digital {fmt(s, n)}"
                  + (f"   after the channel {fmt(sc, n)}" if a.patch_channel else "")
                  + f"   target probability mean {pr.mean():.3f}, 10th percentile {pr.quantile(0.1):.3f}")
    print("  (target >= 80 % digital on the unseen)")


def bench_square(model, a):
    import torchattacks

    from physical.attacks import make_attack

    x, y, where = load_batch(model, a.square_images, correct_only=True)
    ae, cfg = entry({"name": "square", "eps": [16], "queries": a.queries, "p_init": 0.05})
    sq = make_attack(ae, model, 16, seed=0, cfg=cfg)
    t0 = time.time()
    advs, queries = [], []
    for i in range(0, len(x), 16):
        advs.append(sq(x[i : i + 16], y[i : i + 16]))
        queries += [q["queries"] for q in sq.item_info()]
    secs = time.time() - t0
    ok = top1(model, q8(torch.cat(advs))) != y
    q = torch.tensor(queries, dtype=torch.float)[ok]
    print(f"\nsquare: eps 16, {a.queries} queries, {len(x)} photos Lite0 gets right, {where}")
    print(f"  physical     success {fmt(ok.sum().item(), len(x))}  queries per success mean {q.mean():.0f}, "
          f"median {q.median():.0f}  ({secs:.0f} s)")
    t0 = time.time()
    ref = torchattacks.Square(model, norm="Linf", eps=16 / 255, n_queries=a.queries, p_init=0.05, seed=0)
    adv_ref = torch.cat([ref(x[i : i + 16], y[i : i + 16]) for i in range(0, len(x), 16)])
    ok_ref = top1(model, q8(adv_ref)) != y
    print(f"  torchattacks success {fmt(ok_ref.sum().item(), len(x))}  ({time.time() - t0:.0f} s)  (target >= 95 %)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="uap,patch,square")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--uap-eps", type=float, default=10)
    ap.add_argument("--uap-epochs", type=int, default=20)
    ap.add_argument("--patch-fraction", type=float, default=0.1)
    ap.add_argument("--patch-epochs", type=int, default=40)
    ap.add_argument("--patch-draws", type=int, default=2, help="random placements evaluated")
    ap.add_argument("--patch-lr", type=float, default=0.1)
    ap.add_argument("--patch-batch", type=int, default=16, help="fit photos per step")
    ap.add_argument("--patch-scale", type=float, default=0.1, help="EOT while fitting: the patch's side times 1 +- this")
    ap.add_argument("--patch-rotation", type=float, default=10.0, help="EOT while fitting: angle +- this, degrees")
    ap.add_argument("--patch-augment", type=float, default=0.0)
    ap.add_argument("--patch-schedule", default="cosine", choices=["cosine", "constant"])
    ap.add_argument("--patch-holdout", type=int, default=0,
                    help="fit on the fit half less this many photos and measure those (choosing settings), not the unseen")
    ap.add_argument("--patch-channel", type=int, default=1, help="0: skip the after-the-channel figures")
    ap.add_argument("--square-images", type=int, default=100, help="at most: the photos Lite0 gets right")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    setup(a.threads)
    from physical.models import load_model

    model = load_model("efficientnet_lite0", "cpu")
    parts = a.only.split(",")
    if "uap" in parts or "patch" in parts:
        x, y, where = load_batch(model, a.images)
        print(f"{len(x)} photos: {where}")
        if "uap" in parts:
            bench_uap(model, x, y, a)
        if "patch" in parts:
            bench_patch(model, x, y, a)
    if "square" in parts:
        bench_square(model, a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
