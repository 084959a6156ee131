"""Printed attacks (issue 28): patch, UAP and targeted EOT attacks fitted through the calibrated
channel, measured on images the fit never saw: digitally, predicted by draws of the calibrated
channel, and on photos of the printed sheets taken by the independent simulator (benchmarks/indepsim.py,
variants phone and office), which shares no code with the channel.

1. ../shared/imagenet-100 split by a seeded shuffle into a fit half and an unseen half (two folders);
2. `physical calibrate targets`, the chart photographed `--chart` times by indepsim (`--calibrate-variant`,
   phone) and `physical calibrate colour`: the calibration every EOT fit draws from;
3. one run on the unseen half generates: the patch (toaster, 10 % of the image) and the UAP (eps 10),
   both fitted on the fit half (`fit_source`) with `eot: {samples: N}` through the calibrated channel,
   with their controls (noise patch, random signs); EOT-BIM targeted at the toaster and EOT-ILL
   (least-likely class), eps 16; the sheets printed in two runs (the marker ids hold 200 pairs of 30 mm cells);
4. per variant, indepsim photographs every sheet once; the run goes on from capture (a folder of photos)
   through the real align and classify stages;
5. predicted: `--draws` draws of the calibrated channel per adversarial image (the report's survival
   prediction: `physical.measure.survival.survival_probabilities`, a cell's aligned crop at photo scale).

Figures (every rate with n and its Wilson 95 % interval): patch and noise patch, targeted success
(top-1 is the target) over the images whose true class is not the target; UAP and random signs,
fooling (top-1 differs from the clean image's: digitally the clean image's, on photos the clean
cell's photo, predicted the clean image's digital top-1); EOT-BIM and EOT-ILL, targeted success and
Kurakin's top-1 destruction (of the images right when clean and wrong when attacked, the share
right on the photo).

Settings are fixed before the measurement (the families' defaults, chosen on fit photos in earlier
work; N and the steps below), never tuned on the unseen half or on either indepsim variant.

    python benchmarks/printed.py [--out /tmp/physical-printed] [--threads 1] [--eot 2] [--eot-iter 2] [--draws 8]
        [--variants phone,office] [--chart 6] [--steps 20] [--alpha 2] [--patch-epochs 40] [--uap-epochs 20]
        [--groups 0,1] [--only patch,uap,bim,ill] [--uap-set JSON] [--device cpu] [--fit-only]

`--groups 0` measures the patch and the UAP alone, `--groups 1` the targeted EOT attacks. The fits can
be made on a GPU machine with `--fit-only --device cuda` (the same --out path there, holding images/
and colour.json) and out/base brought back: the CPU run then keeps them and does the rest.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMAGENET_100, setup  # noqa: E402
import indepsim  # noqa: E402
from physical.measure.stats import wilson  # noqa: E402

TOASTER = 859
CELL_MM = 30  # 10 pairs a sheet: 200 pairs a run (its marker ids), 50 images x 4 labels


def split_images(src: Path, out: Path, seed: int = 0) -> tuple[Path, Path]:
    """The photos of `src` split by a seeded shuffle into out/fit and out/unseen, each with its labels.csv."""
    with open(src / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    half = len(rows) // 2
    for name, part in (("fit", order[:half]), ("unseen", order[half:])):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "labels.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for i in sorted(part):
                w.writerow(rows[i])
                if not (d / rows[i]["file"]).exists():
                    shutil.copy(src / rows[i]["file"], d / rows[i]["file"])
    return out / "fit", out / "unseen"


def attacks(a, fit: Path) -> list[list[dict]]:
    """The attack entries, in print groups (each fits one run's 200 pairs)."""
    eot_fit, eot_iter = {"samples": a.eot}, {"samples": a.eot_iter}
    return [
        [{"name": "patch", "fraction": 0.1, "fit_source": str(fit), "epochs": a.patch_epochs, "eot": eot_fit},
         {"name": "uap", "eps": [10], "fit_source": str(fit), "epochs": a.uap_epochs, "eot": eot_fit,
         **json.loads(a.uap_set)}],
        [{"name": "bim", "eps": [16], "target": TOASTER, "steps": a.steps, "alpha": a.alpha, "eot": eot_iter},
         {"name": "ill", "eps": [16], "steps": a.steps, "alpha": a.alpha, "eot": eot_iter}],
    ]


def config(root: Path, name: str, images: Path, capture: dict, entries: list[dict], device: str = "cpu"):
    from physical.runs.checks import from_dict

    return from_dict({
        "run": {"name": name, "output": str(root), "seed": 0, "device": device},
        "models": ["efficientnet_lite0"], "images": {"source": str(images)},
        "attacks": entries, "sheet": {"cell_mm": CELL_MM}, "capture": capture,
        "report": {"html": False, "predict_draws": 0}, "experiments": {"enabled": False},
    }, root)


def calibrate(out: Path, variant: str, photos: int, threads: int) -> Path:
    colour = out / "colour.json"
    if colour.is_file():
        return colour
    subprocess.run(["physical", "calibrate", "targets", "--out", str(out / "targets")], check=True,
                   stdout=subprocess.DEVNULL)
    indepsim.photograph_pdf(out / "targets" / "colour-chart.pdf", out / "chart", photos=photos, seed=1000,
                            prefix="chart", variant=variant, workers=threads)
    subprocess.run(["physical", "calibrate", "colour", "--source", str(out / "chart"), "--out", str(colour)],
                   check=True, stdout=subprocess.DEVNULL)
    return colour


def generate_and_print(out: Path, unseen: Path, capture: dict, groups: list[list[dict]], device: str = "cpu",
                       fit_only: bool = False) -> float:
    """One generate of every entry (the fits) on `device`, then (unless `fit_only`) each print group's
    sheets in a copy of it; the generate's seconds (0 when kept from an earlier call). The generate's
    keys hold no device: fits made on a GPU (`--fit-only --device cuda`, out/base carried back) are kept
    by a CPU run of the rest."""
    from physical.runs.pipeline import run_pipeline

    t = time.time()
    every = [e for g in groups for e in g]
    if not (out / "base" / "generate" / "index.json").is_file():
        run_pipeline(config(out, "base", unseen, capture, every, device), until="generate", log=lambda *a: None)
    secs = time.time() - t
    if fit_only:
        return secs
    for g, entries in enumerate(groups):
        if not (out / f"base-{g}" / "print" / "sheets.pdf").is_file():
            shutil.rmtree(out / f"base-{g}", ignore_errors=True)
            shutil.copytree(out / "base", out / f"base-{g}")
            run_pipeline(config(out, f"base-{g}", unseen, capture, entries), until="print", log=lambda *a: None)
    return secs


def photographed(out: Path, unseen: Path, capture: dict, groups, variant: str, threads: int) -> list[dict]:
    """indepsim's photos of every group's sheets, aligned and classified by the real stages: the records."""
    from physical.rundir import RunDir
    from physical.runs.pipeline import run_pipeline
    from physical.stages.classify import load_records

    recs = []
    for g, entries in enumerate(groups):
        name = f"{variant}-{g}"
        if not (out / name / "classify" / "predictions.json").is_file():
            t = time.time()
            photos = indepsim.photograph_pdf(out / f"base-{g}" / "print" / "sheets.pdf", out / f"photos-{name}",
                                             photos=1, seed=2000 + 100 * g, prefix="sheet", variant=variant,
                                             workers=threads)
            shutil.rmtree(out / name, ignore_errors=True)
            shutil.copytree(out / f"base-{g}", out / name)
            cfg = config(out, name, unseen, {**capture, "source": f"folder:{out / f'photos-{name}'}"}, entries)
            run_pipeline(cfg, from_stage="capture", until="classify", log=lambda *a: None)
            print(f"  {name}: {len(photos)} indepsim photos, aligned, classified in {time.time() - t:.0f} s",
                  flush=True)
        recs += load_records(RunDir(out / name))
    return recs


def targets_of(out: Path) -> dict[str, dict[str, int]]:
    """Per attack label, per image: the class aimed at (the entry's target; ILL: the clean image's
    least-likely class, as the attack computes it)."""
    from physical import runfiles
    from physical.models import load_model, to_tensor
    from physical.rundir import RunDir

    run = RunDir(out / "base")
    items = runfiles.load_index(run).items
    model = load_model("efficientnet_lite0", "cpu")
    out_t: dict[str, dict[str, int]] = {}
    ill = [it for it in items if it["attack"] == "ill"]
    if ill:
        x = to_tensor(runfiles.load_item_images(run, ill, "clean"), "cpu")
        with torch.no_grad():
            least = torch.cat([model(x[i : i + 16]).argmin(1) for i in range(0, len(x), 16)]).tolist()
        for it, t in zip(ill, least, strict=True):
            out_t.setdefault(it["attack_label"], {})[it["image"]] = int(t)
    for it in items:
        if it.get("target") is not None and it["attack"] != "ill":
            out_t.setdefault(it["attack_label"], {})[it["image"]] = int(it["target"])
    return out_t


def predicted(out: Path, colour: Path, unseen: Path, capture: dict, groups, targets,
              draws: int) -> tuple[dict, dict]:
    """Per attack label, per image: the share of `draws` draws of the calibrated channel in which the
    attack works. Targeted: top-1 is the target. Fooling (uap, random signs): as the photos measure it,
    the adversarial image's top-1 after a draw differs from the clean image's after another draw (a
    photo of each). Also, per fooling label, the mean fooling against the clean image's digital
    top-1 instead (the same draws of the adversarial images)."""
    from physical import runfiles
    from physical.measure.survival import crop_channel, draw_top1, predict_seed
    from physical.models import load_model, predict, to_tensor
    from physical.rundir import RunDir

    run = RunDir(out / "base")
    cfg = config(out, "base", unseen, capture, [e for g in groups for e in g])
    model = load_model("efficientnet_lite0", "cpu")
    channel = crop_channel(cfg, "cpu")
    gen = torch.Generator().manual_seed(predict_seed(0))
    by_label: dict[str, list[dict]] = {}
    for it in runfiles.load_index(run).items:
        by_label.setdefault(it["attack_label"], []).append(it)
    res: dict[str, dict[str, float]] = {}
    digital_clean: dict[str, float] = {}
    for label, items in by_label.items():
        x = to_tensor(runfiles.load_item_images(run, items, "adv"), "cpu")
        clean = to_tensor(runfiles.load_item_images(run, items, "clean"), "cpu")
        aim = targets.get(label)
        with torch.no_grad():
            adv_top = draw_top1(model, channel, x, draws, gen)
            if aim is None:  # fooling, photo against photo: another draw for the clean cell
                top = torch.as_tensor(predict(model, clean, 16, k=1)[0][:, 0])
                digital_clean[label] = float((adv_top != top[:, None]).float().mean())
                hit = adv_top != draw_top1(model, channel, clean, draws, gen)
            else:
                hit = adv_top == torch.tensor([aim[it["image"]] for it in items])[:, None]
        res[label] = {it["image"]: float(v) for it, v in zip(items, hit.float().mean(1), strict=True)}
    return res, digital_clean


def outcomes(recs: list[dict], targets: dict, where: str) -> dict[str, dict[str, bool]]:
    """Per attack label, per image: whether the attack works on `where`'s prediction (digital or photo)."""
    res: dict[str, dict[str, bool]] = {}
    for r in recs:
        adv, clean = r["pred"].get(f"{where}_adv"), r["pred"].get(f"{where}_clean")
        aim = targets.get(r["attack_label"], {}).get(r["image"])
        if adv is None or (aim is None and clean is None) or aim == r["label"]:
            continue
        ok = adv["top"][0] == aim if aim is not None else adv["top"][0] != clean["top"][0]
        res.setdefault(r["attack_label"], {})[r["image"]] = bool(ok)
    return res


def destruction(recs: list[dict]) -> dict[str, dict[str, bool]]:
    """Kurakin's top-1 destruction per label: of the images right when clean and wrong when attacked
    (digitally), whether the photo of the adversarial image is right again."""
    res: dict[str, dict[str, bool]] = {}
    for r in recs:
        p, lab = r["pred"], r["label"]
        if p.get("photo_adv") is None or p["digital_clean"]["top"][0] != lab or p["digital_adv"]["top"][0] == lab:
            continue
        res.setdefault(r["attack_label"], {})[r["image"]] = p["photo_adv"]["top"][0] == lab
    return res


def cell(k: float, n: int) -> str:
    if not n:
        return "- (0)"
    lo, hi = wilson(k, n) or (0.0, 0.0)
    return f"{k / n:.2f} [{lo:.2f}, {hi:.2f}] ({n})"


def table(rows: dict, variants: list[str]) -> str:
    head = ["attack", "digital", "predicted (calibrated channel)"] + [f"photo ({v})" for v in variants]
    head += [f"destruction ({v})" for v in variants]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in rows.items():
        def fig(d):
            return cell(sum(d.values()), len(d)) if d is not None else "-"
        cells = [label, fig(r["digital"]), fig(r["predicted"])] + [fig(r["photo"].get(v)) for v in variants]
        cells += [fig(r["destruction"].get(v)) if r["destruction"].get(v) else "-" for v in variants]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="/tmp/physical-printed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eot", type=int, default=2, help="EOT samples per fit image and step (patch, uap)")
    p.add_argument("--eot-iter", type=int, default=2, help="EOT samples per image and step (bim, ill)")
    p.add_argument("--steps", type=int, default=20, help="steps of the targeted EOT attacks")
    p.add_argument("--alpha", type=float, default=2.0, help="their step (0..255)")
    p.add_argument("--patch-epochs", type=int, default=40)
    p.add_argument("--uap-epochs", type=int, default=20)
    p.add_argument("--draws", type=int, default=8, help="draws of the calibrated channel per image (predicted)")
    p.add_argument("--variants", default="phone,office")
    p.add_argument("--calibrate-variant", default="phone")
    p.add_argument("--chart", type=int, default=6)
    p.add_argument("--groups", default="0,1", help="print groups measured: 0 patch and uap, 1 targeted EOT")
    p.add_argument("--device", default="cpu", help="where generate fits and attacks (cuda, mps, cpu)")
    p.add_argument("--fit-only", action="store_true", help="stop after generate (the fits)")
    p.add_argument("--only", default="", help="the attacks of the groups measured, by name (patch,uap,bim,ill)")
    p.add_argument("--uap-set", default="{}", help="JSON settings added to the UAP's entry (fit_select.py's choice)")
    a = p.parse_args()
    setup(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    fit, unseen = split_images(IMAGENET_100.resolve(), out / "images")
    colour = calibrate(out, a.calibrate_variant, a.chart, a.threads)
    capture = {"source": "simulate", "channel": {"calibration": str(colour)}}
    every = attacks(a, fit)
    groups = [[e for e in every[int(g)] if not a.only or e["name"] in a.only.split(",")] for g in a.groups.split(",")]
    secs = generate_and_print(out, unseen, capture, groups, a.device, a.fit_only)
    print(f"calibrated and generated (the fits) in {time.time() - t0:.0f} s (generate {secs:.0f} s)", flush=True)
    for rec in sorted((out / "base" / "generate" / "done").glob("*.json")):
        d = json.loads(rec.read_text())
        if "fit_seconds" in d:
            print(f"  fit {d['attack']} eps {d['eps']:g}: {d['fit_seconds']:.0f} s on {d['n_fit']} fit images")
    if a.fit_only:
        return
    targets = targets_of(out)
    variants = a.variants.split(",")
    photo = {v: photographed(out, unseen, capture, groups, v, a.threads) for v in variants}
    t = time.time()
    pred, digital_clean = predicted(out, colour, unseen, capture, groups, targets, a.draws)
    print(f"predicted ({a.draws} draws of the calibrated channel) in {time.time() - t:.0f} s", flush=True)
    first = photo[variants[0]]
    dig = outcomes(first, targets, "digital")
    rows = {label: {"digital": dig[label],
                    "predicted": {k: v for k, v in pred.get(label, {}).items() if k in dig[label]},
                    "photo": {v: outcomes(photo[v], targets, "photo").get(label, {}) for v in variants},
                    "destruction": {v: destruction(photo[v]).get(label) if label.startswith(("eot-bim", "eot-ill"))
                                    else None for v in variants}}
            for label in dig}
    print("\nsuccess on the 50 unseen images (targeted success; uap and random signs: fooling), rate [Wilson 95 %] (n)")
    print(table(rows, variants))
    for label, v in digital_clean.items():
        print(f"  {label}: predicted fooling against the clean image's digital top-1 (not a photo of it): {v:.2f}")
    (out / "printed.json").write_text(json.dumps(rows, indent=1))
    print(f"({time.time() - t0:.0f} s in all; per image: {out / 'printed.json'})")


if __name__ == "__main__":
    main()
