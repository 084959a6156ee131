"""Does the calibrated simulator predict the trip through a printer and camera it never saw?

The "real" printer and camera are benchmarks/indepsim.py, an independent simulator (its own PDF
rasterizer resolution, a halftoning printer, a 12-MP phone with Bayer mosaic, demosaicing, denoise,
sharpening and JPEG) that shares no code with physical's channel. Then, as a lab would:

1. one run generates FGSM, BIM and ILL at eps 8 and 16 and EOT-BIM at eps 16 on ImageNet photos
   (../shared/imagenet-100) and prints its sheets;
2. `physical calibrate targets`; the colour chart is "photographed" `--chart` times through the
   independent simulator and `physical calibrate colour` fits the channel from those photos;
3. measured: the sheets are photographed through the independent simulator and the run goes on
   from capture (folder of photos) through the real align and classify stages;
4. predicted: the same printed sheets photographed by physical's simulator with the calibrated
   channel (its noise texture included; with `--halftone-lpi N` its printer screens the pages,
   channel.halftone_lpi: the printer's specification, which a lab reads off its printer), then
   read like the independent photos (a folder), so
   EOT-BIM's printed images are predicted too; also the default channel (no calibration, the
   `phone` preset) for reference;
5. per attack: top-1 destruction rate predicted vs measured, with n and Wilson 95 % intervals, and
   photo-clean top-1 over every clean cell of every print group (n counts cells; the interval is a
   bootstrap over images, whose cells are not independent).

    python benchmarks/fidelity.py [--images 64] [--chart 6] [--out /tmp/physical-fidelity] [--skip-default] [--rounds 1]
        [--halftone-lpi N]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMAGENET_100, setup  # noqa: E402
import indepsim  # noqa: E402
from physical.measure.stats import mcnemar, wilson  # noqa: E402

ATTACKS = [{"name": "fgsm", "eps": [8, 16]}, {"name": "bim", "eps": [8, 16]}, {"name": "ill", "eps": [8, 16]},
           {"name": "bim", "eps": [16], "eot": {"samples": 8}}]

# the channel's defaults before presets (what the issue measured)
OLD_DEFAULTS = dict(rotation_deg=180.0, tilt=0.12, scale=[0.7, 0.95], translate=0.05, blur_sigma=[0.3, 1.2],
                    noise_sigma=[0.005, 0.02], brightness=[-0.08, 0.08], contrast=[0.85, 1.1], white_balance=0.05,
                    light_gradient=0.15, jpeg_quality=[75.0, 95.0])


DEVICE = "cpu"  # --device


def config(root: Path, name: str, images: str, limit: int, capture: dict, attacks=None, seed: int = 0):
    from physical.runs.checks import from_dict

    return from_dict({
        "run": {"name": name, "output": str(root), "seed": seed, "device": DEVICE},
        "models": ["efficientnet_lite0"], "images": {"source": images, "limit": limit},
        "attacks": attacks or ATTACKS, "capture": capture, "report": {"html": False},
        "experiments": {"enabled": False, "transfer": {"models": ["available"]}},
    }, root)


ROWS = {"measured": "measured (independent simulator)", "predicted": "predicted (calibrated channel)",
        "before": "predicted, channel before the fix", "default": "default channel (phone preset)"}


def print_groups(n_images: int) -> list[list[dict]]:
    """The attacks split into runs whose image pairs fit on the sheets' marker ids (30 A4 sheets of
    6 pairs): each run prints the clean images and its share of the attacks, from the one generate."""
    from physical.config import Config
    from physical.sheets.layout import layout_for

    lay = layout_for(Config().sheet)
    cap = lay.max_sheets * len(lay.pair_slots()) // max(n_images, 1)  # attack images per run
    if cap < 1:
        raise SystemExit(f"--images {n_images}: more than the {lay.max_sheets * len(lay.pair_slots())} pairs a run prints")
    groups, cur = [], []
    for entry in ATTACKS:
        for eps in entry["eps"]:
            if len(cur) == cap:
                groups.append(cur)
                cur = []
            cur.append(dict(entry, eps=[eps]))
    return groups + [cur] if cur else groups


def cells_row(each: dict) -> dict:
    """A row whose images count several times: {k, n, each} from image -> list of outcomes."""
    return {"k": sum(map(sum, each.values())), "n": sum(map(len, each.values())), "each": each}


def merged(parts: list[dict]) -> dict:
    """One row from the runs of the print groups: every attack's figures; photo-clean over the clean
    cells of every run (each printed and photographed the same clean images again); digital clean
    from the first."""
    out = dict(parts[0])
    each: dict = {}
    for part in parts:
        out.update({k: v for k, v in part.items() if "clean" not in k})
        for image, cells in part["photo clean top-1"]["each"].items():
            each.setdefault(image, []).extend(cells)
    out["photo clean top-1"] = cells_row(each)
    return out


def rounds_of(rows: list[dict]) -> dict:
    """One row from R rounds (independent photos of the same sheets): per label k and n pooled, and
    per image the outcomes of every round that counted it."""
    out: dict = {}
    for row in rows:
        for label, v in row.items():
            o = out.setdefault(label, {"k": 0, "n": 0, "each": {}, "rounds": len(rows)})
            o["k"] += v["k"]
            o["n"] += v["n"]
            for image, ok in v["each"].items():  # one outcome, or a list (photo-clean's cells)
                o["each"].setdefault(image, []).extend(map(bool, ok) if isinstance(ok, list) else [bool(ok)])
    return out


BOOT = 4000


def bootstrap(each: dict, other: dict | None = None, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval, resampling images (the rounds of one image are not independent):
    of the pooled rate of `each` (image -> outcomes), or with `other`, of the difference of the
    pooled rates other - each on the images both hold."""
    keys = sorted(set(each) & set(other)) if other is not None else sorted(each)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(keys), size=(BOOT, len(keys)))

    def pooled(d):
        k = np.array([sum(d[i]) for i in keys], float)
        n = np.array([len(d[i]) for i in keys], float)
        return k[idx].sum(1) / np.maximum(n[idx].sum(1), 1)

    stat = pooled(each) if other is None else pooled(other) - pooled(each)
    lo, hi = np.percentile(stat, [2.5, 97.5])
    return float(lo), float(hi)


def figures(run_root: Path) -> dict:
    """Per attack label: destruction {k, n, each: {image: destroyed}}; and photo-clean /
    digital-clean top-1 {k, n, each}."""
    from physical.stages.classify import load_records
    from physical.measure.metrics import correct
    from physical.rundir import RunDir

    recs = load_records(RunDir(run_root))
    out: dict = {}
    for r in recs:
        p, lab = r["pred"], r["label"]
        row = out.setdefault(r["attack_label"], {"k": 0, "n": 0, "each": {}})
        t = correct(p.get("photo_adv"), lab, 1)
        if t is not None and correct(p["digital_clean"], lab, 1) and not correct(p["digital_adv"], lab, 1):
            row["n"] += 1
            row["k"] += int(t)
            row["each"][r["image"]] = bool(t)
    clean: dict = {}
    for r in recs:  # every attack's pair has its own printed, photographed clean cell: all of them count
        c = correct(r["pred"].get("photo_clean"), r["label"], 1)
        if c is not None:
            clean.setdefault(r["image"], []).append(bool(c))
    dig = {r["image"]: correct(r["pred"]["digital_clean"], r["label"], 1) for r in recs}
    out["photo clean top-1"] = cells_row(clean)
    out["digital clean top-1"] = {"k": sum(dig.values()), "n": len(dig), "each": dig}
    return out


def capture_and_classify(out: Path, name: str, cfg, base: str = "base") -> dict:
    from physical.runs.pipeline import run_pipeline

    if (out / name / "classify" / "predictions.json").is_file():  # kept by --reuse
        return figures(out / name)
    shutil.rmtree(out / name, ignore_errors=True)
    shutil.copytree(out / base, out / name)
    t = time.time()
    run_pipeline(cfg, from_stage="capture", until="classify", log=lambda *a: None)
    print(f"  {name}: captured, aligned, classified in {time.time() - t:.0f} s", flush=True)
    return figures(out / name)


def simulated_photos(base: Path, where: Path, cfg) -> Path:
    """Photos of `base`'s printed sheets through physical's simulator with `cfg`'s capture channel
    (kept when complete: --reuse)."""
    from physical.rundir import RunDir
    from physical.sim.print_camera import simulate_stage

    photos, done = where / "capture" / "photos", where / "capture" / "simulated.json"
    if not done.is_file() or "seed" not in json.loads(done.read_text()):  # the final file has the seed
        shutil.rmtree(where, ignore_errors=True)
        shutil.copytree(base / "print", where / "print")
        t = time.time()
        simulate_stage(RunDir(where), cfg)
        print(f"  {where.name}: {len(list(photos.glob('*.jpg')))} simulated photos in {time.time() - t:.0f} s", flush=True)
    return photos


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--chart", type=int, default=6, help="photos of the colour chart")
    p.add_argument("--out", default="/tmp/physical-fidelity")
    p.add_argument("--skip-default", action="store_true", help="leave out the default channel's row")
    p.add_argument("--skip-before", action="store_true", help="leave out the pre-fix channel's row")
    p.add_argument("--survival-draws", type=int, default=0, metavar="K",
                   help="also predict each adversarial image's survival with K draws of the calibrated channel and "
                        "score it (Brier) against the independent simulator's photos")
    p.add_argument("--survival-attacks", default="fgsm_eps16,bim_eps16", help="attack labels scored (comma-separated)")
    p.add_argument("--no-eot", action="store_true", help="leave out EOT-BIM (its generation is the slow part)")
    p.add_argument("--variant", choices=sorted(indepsim.VARIANTS), default="phone",
                   help="the independent simulator's printer and camera (indepsim.VARIANTS)")
    p.add_argument("--groups", default=None, help="only these print groups (comma-separated indices; default all)")
    p.add_argument("--rounds", type=int, default=1, help="photograph every sheet this many times through each "
                   "channel (independent draws); a rate is then the mean over rounds, its interval a bootstrap over images")
    p.add_argument("--halftone-lpi", type=float, default=None, help="the simulator prints with this halftone screen "
                   "(channel.halftone_lpi: the printer's lines per inch, from its specification)")
    p.add_argument("--reuse", action="store_true", help="keep what --out holds (the generated and printed run, "
                   "the photos, the rows already classified) and add what is missing")
    p.add_argument("--device", default="cpu", help="run.device of every run (cpu, cuda, ...)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    setup(a.threads)
    global DEVICE
    DEVICE = a.device
    from physical.runs.pipeline import run_pipeline

    if a.no_eot:
        del ATTACKS[-1]
    out = Path(a.out)
    reuse = a.reuse and (out / "base" / "generate" / "index.json").is_file()
    if not reuse:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    images = str(IMAGENET_100.resolve()) if IMAGENET_100.is_dir() else "samples"
    t0 = time.time()
    if not reuse:
        run_pipeline(config(out, "base", images, a.images, {"source": "simulate"}), until="generate",
                     log=lambda *a: None)
        print(f"generated {a.images} images ({images}) in {time.time() - t0:.0f} s", flush=True)
    groups = print_groups(a.images)
    for g, attacks in enumerate(groups):  # one generate, printed in runs that fit the sheets' marker ids
        if not (out / f"base-{g}" / "print" / "sheets.pdf").is_file():
            shutil.rmtree(out / f"base-{g}", ignore_errors=True)
            shutil.copytree(out / "base", out / f"base-{g}")
            run_pipeline(config(out, f"base-{g}", images, a.images, {"source": "simulate"}, attacks), until="print",
                         log=lambda *a: None)
    print(f"printed in {len(groups)} runs: " + "; ".join(
        ", ".join(f"{'eot-' if e.get('eot') else ''}{e['name']} eps {e['eps'][0]}" for e in grp) for grp in groups))

    # calibrate from the independent simulator's photos of the chart, with the tool's own commands
    subprocess.run(["physical", "calibrate", "targets", "--out", str(out / "targets")], check=True,
                   stdout=subprocess.DEVNULL)
    indepsim.photograph_pdf(out / "targets" / "colour-chart.pdf", out / "chart", photos=a.chart, seed=1000,
                            prefix="chart", variant=a.variant, workers=a.threads)
    subprocess.run(["physical", "calibrate", "colour", "--source", str(out / "chart"), "--out",
                    str(out / "colour.json")], check=True)
    calibrated = {"source": "simulate", "channel": {"calibration": str(out / "colour.json"),
                                                    "halftone_lpi": a.halftone_lpi}}
    if not a.skip_before:
        # the channel as it was before the calibration set the frame, scale, pose, JPEG and light: only
        # the colour model, blur and noise from the file; the old defaults' 2400 x 1800 frame, any
        # rotation, scale 0.7-0.95, JPEG 75-95, exposure +-8 %
        doc = json.loads((out / "colour.json").read_text())
        doc.pop("channel", None)
        (out / "colour-before.json").write_text(json.dumps(doc))
        before = dict(OLD_DEFAULTS, calibration=str(out / "colour-before.json"))
    parts: dict = {}
    chosen = set(range(len(groups))) if a.groups is None else {int(v) for v in a.groups.split(",")}
    for g, attacks in enumerate(groups):
        if g not in chosen:
            continue
        for r in range(a.rounds):
            rnd = "" if r == 0 else f"-r{r}"  # round 0 keeps the names of a one-round run (--reuse)
            t = time.time()
            photos = indepsim.photograph_pdf(out / f"base-{g}" / "print" / "sheets.pdf", out / f"photos-{g}{rnd}",
                                             photos=1, seed=2000 + 100 * g + 10000 * r, prefix="sheet",
                                             variant=a.variant, workers=a.threads)  # resumes: pages photographed are kept
            print(f"independent simulator: {len(photos)} sheet photos in {time.time() - t:.0f} s", flush=True)

            def row(name: str, capture: dict):
                if capture["source"] == "simulate":
                    # physical's simulator photographs the printed sheets into a folder, read like the
                    # independent photos: a channel in capture.channel would also re-make EOT's images
                    # (they are keyed by the channel they drew from), not predict the printed ones
                    sim = config(out, f"{name}-{g}{rnd}-photos", images, a.images, capture, attacks, seed=r)
                    folder = simulated_photos(out / f"base-{g}", out / f"{name}-{g}{rnd}-photos", sim)
                    capture = {"source": f"folder:{folder}"}
                cfg = config(out, f"{name}-{g}{rnd}", images, a.images, capture, attacks)
                parts.setdefault(name, {}).setdefault(r, []).append(
                    capture_and_classify(out, f"{name}-{g}{rnd}", cfg, f"base-{g}"))

            row("measured", {"source": f"folder:{out / f'photos-{g}{rnd}'}"})
            row("predicted", calibrated)
            if not a.skip_before:
                row("before", {"source": "simulate", "frame": [2400, 1800], "dpi": 200, "channel": before})
            if not a.skip_default:
                row("default", {"source": "simulate"})
    rows = {ROWS[name]: rounds_of([merged(p) for p in by_round.values()]) for name, by_round in parts.items()}
    report(rows)
    if a.survival_draws > 0:
        labels = a.survival_attacks.split(",")
        survival([(out / f"measured-{g}", config(out, f"predicted-{g}", images, a.images, calibrated, attacks))
                  for g, attacks in enumerate(groups) if g in chosen], labels, a.survival_draws)
    (out / "fidelity.json").write_text(json.dumps(rows, indent=1))  # every row's per-image outcomes
    print(f"({time.time() - t0:.0f} s in all; the rows per image: {out / 'fidelity.json'})")


def survival(runs: list, labels: list[str], draws: int) -> None:
    """Predicted survival (the report's `survival` section, K draws of the calibrated channel)
    against what the independent simulator's photos showed, per attack: Brier score next to a
    forecaster that knows only the observed survival rate."""
    from physical.stages.classify import load_records
    from physical.rundir import RunDir
    from physical.measure.stats import brier
    from physical.measure.survival import predict_items, works

    recs, pred, t = [], [], time.time()
    for root, cfg in runs:  # (a measured run, the calibrated config) per print group
        run = RunDir(root)
        mine = [r for r in load_records(run) if r["attack_label"] in labels and works(r) is not None]
        recs += mine
        pred += predict_items(run, cfg, "cpu", mine, draws) if mine else []
    print(f"\npredicted survival ({draws} draws of the calibrated channel, {time.time() - t:.0f} s) against the "
          "independent simulator's photos: Brier score (0 is perfect) vs a constant forecast of the observed rate")
    for label in labels + ["all"]:
        sel = [(p, works(r)) for p, r in zip(pred, recs) if label in ("all", r["attack_label"])]
        if not sel:
            continue
        ps, obs = [p for p, _ in sel], [o for _, o in sel]
        rate = sum(obs) / len(obs)
        print(f"  {label:<14} n {len(sel):4d}  survived {rate:.2f}  mean predicted {sum(ps) / len(ps):.2f}  "
              f"Brier {brier(ps, obs):.3f}  constant {brier([rate] * len(obs), obs):.3f}")


def repeated(v: dict) -> bool:
    """Whether an image counts more than once in a row (rounds, or photo-clean's cells): its
    interval then resamples images (bootstrap), not outcomes (Wilson)."""
    return v["rounds"] > 1 or any(len(x) > 1 for x in v["each"].values())


def report(rows: dict) -> None:
    """The table: per attack, each channel's rate [Wilson 95 %] (n); then predicted - measured for the
    calibrated channel with McNemar's paired test on the images both photographed (the same
    adversarial image, two channels)."""
    measured, predicted = list(rows.values())[:2]
    keys = [k for k in measured if "clean" not in k] + ["photo clean top-1", "digital clean top-1"]
    print("\ntop-1 destruction rate per attack (photo-clean / digital-clean: top-1 accuracy); "
          "rate [95 % interval: Wilson; a bootstrap over images where an image counts more than once: "
          "--rounds > 1, photo-clean's cells] (n)")
    print(f"{'':<24}" + "".join(f"{name:>36}" for name in rows) + f"{'predicted - measured':>22}{'McNemar p / 95 %':>17}")
    for k in keys:
        cells, rates = [], []
        for name, r in rows.items():
            v = r.get(k, {"k": 0, "n": 0, "each": {}, "rounds": 1})
            rate = v["k"] / v["n"] if v["n"] else float("nan")
            if v["n"] and repeated(v):
                lo, hi = bootstrap(v["each"])
            else:
                lo, hi = wilson(v["k"], v["n"]) or (float("nan"), float("nan"))
            rates.append(rate)
            cells.append(f"{rate:.2f} [{lo:.2f}, {hi:.2f}] ({v['n']})")
        m, p = measured.get(k, {}).get("each", {}), predicted.get(k, {}).get("each", {})
        both = sorted(set(m) & set(p))
        diff = rates[1] - rates[0] if len(rates) > 1 else float("nan")
        if both and not repeated(measured[k]):
            test = mcnemar([m[i][0] for i in both], [p[i][0] for i in both])
            sig = f"{test['p']:.3f}{' *' if test['significant'] else '  '}"
        elif both:
            lo, hi = bootstrap(m, p)
            sig = f"[{lo:+.2f}, {hi:+.2f}]{' *' if lo > 0 or hi < 0 else '  '}"
        else:
            sig = ""
        print(f"{k:<24}" + "".join(f"{c:>36}" for c in cells) + f"{diff:>+22.2f}{sig:>17}")
    print("(* the paired test calls the calibrated prediction and the measurement different at the 5 % level; where "
          "an image counts more than once the intervals resample images and the last column is the difference's "
          "95 % interval)")


if __name__ == "__main__":
    main()
