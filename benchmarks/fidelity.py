"""Does the calibrated simulator predict the trip through a printer and camera it never saw?

The "real" printers and cameras are the variants of benchmarks/indepsim.py (phone, office, inkjet),
an independent simulator that shares no code with physical's channel. As a lab would:

1. one run generates every attack of ATTACKS (Kurakin's FGSM, BIM and ILL, and PGD, MI-FGSM, DI,
   TI and targeted BIM, at eps 8 and 16; EOT-BIM at eps 16) on the images of `--source` (a folder
   with labels.csv, default ../shared/imagenet-100) and prints its sheets in runs that fit the
   sheets' marker ids;
2. per variant: `physical calibrate targets`; the colour chart is "photographed" through the variant
   and `physical calibrate colour` fits the channel from `--chart` of those photos (and, for the
   chart-count curve `--charts 1,2,4,6,10`, from the first 1, 2, ... of the same photos);
3. measured: the sheets photographed through the variant, then the real capture (folder), align and
   classify stages;
4. predicted, twice: (a) physical's simulator photographs the same printed sheets with the
   calibrated channel and they are read like the measured photos (one simulated photo per sheet);
   (b) per adversarial image, the survival forecast: the fraction of `--draws` channel draws of the
   cell in which the attack still works (`physical.measure.survival`, what `physical predict`
   prints), and that fraction through an isotonic forecast map fitted on (a)'s simulated outcomes
   of the *other* half of the images (cross-fitted by image; never on the measured photos);
5. every image's outcomes are kept in OUT/rows.json; the tables (fidelity_tables.py) are printed
   from them, per variant and pooled over the variants.

`--part K/M` runs the K-th of M interleaved shares of the images (OUT/part-K-of-M); `--merge DIR ...`
prints the tables of the rows.json files of several parts (or runs) together.

    python benchmarks/fidelity.py [--images 64] [--variants phone,office] [--chart 6] [--charts 1,2,4,6,10]
        [--draws 8] [--part K/M] [--source FOLDER] [--out /tmp/physical-fidelity] [--halftone-lpi N]
    python benchmarks/fidelity.py --merge OUT/part-1-of-2 OUT/part-2-of-2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMAGENET_100, setup  # noqa: E402
import fidelity_tables  # noqa: E402
import indepsim  # noqa: E402

KURAKIN_AND_MORE = ["fgsm", "bim", "ill", "pgd", "mifgsm", "difgsm", "tifgsm"]
TARGET = 859  # targeted BIM's class (toaster, the patch attack's default target)
ATTACKS = ([{"name": n, "eps": [8, 16]} for n in KURAKIN_AND_MORE] + [{"name": "bim", "eps": [8, 16], "target": TARGET}]
           + [{"name": "bim", "eps": [16], "eot": {"samples": 8}}])
DEVICE = "cpu"  # --device


def config(root: Path, name: str, images: str, limit: int, capture: dict, attacks=None, seed: int = 0):
    from physical.runs.checks import from_dict

    return from_dict({
        "run": {"name": name, "output": str(root), "seed": seed, "device": DEVICE},
        "models": ["efficientnet_lite0"], "images": {"source": images, "limit": limit},
        "attacks": attacks or ATTACKS, "capture": capture, "report": {"html": False},
        "experiments": {"enabled": False, "transfer": {"models": ["available"]}},
    }, root)


def print_groups(n_images: int) -> list[list[dict]]:
    """The attacks split into runs whose image pairs fit on the sheets' marker ids (30 A4 sheets of
    6 pairs): each run prints the clean images and its share of the attacks, from the one generate."""
    from physical.config import Config
    from physical.sheets.layout import layout_for

    lay = layout_for(Config().sheet)
    cap = lay.max_sheets * len(lay.pair_slots()) // max(n_images, 1)  # attack images per run
    if cap < 1:
        pairs = lay.max_sheets * len(lay.pair_slots())
        raise SystemExit(f"--images {n_images}: more than the {pairs} pairs a run prints")
    groups, cur = [], []
    for entry in ATTACKS:
        for eps in entry["eps"]:
            if len(cur) == cap:
                groups.append(cur)
                cur = []
            cur.append(dict(entry, eps=[eps]))
    return groups + [cur] if cur else groups


def part_images(source: Path, limit: int, part: tuple[int, int], where: Path) -> int:
    """A folder of this part's images (links) with their labels.csv: the run's stratified sample of
    `limit` images of `source`, every M-th from the K-th. Returns how many."""
    from physical.data.images import _entries
    from physical.data.imagesets import stratified

    chosen = stratified(_entries(source)[0], limit)
    k, m = part
    mine = chosen[k - 1::m]
    if any(label is None for _, label in mine):
        raise SystemExit(f"{source}: every image needs a label (labels.csv) for the fidelity benchmark")
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    lines = ["file,class_index"]
    for i, (path, label) in enumerate(mine):
        name = f"{i:04d}_{path.name}"  # unique even where class folders repeat a file name
        os.symlink(path.resolve(), where / name)
        lines.append(f"{name},{label}")
    (where / "labels.csv").write_text("\n".join(lines) + "\n")
    return len(mine)


def generate_and_print(out: Path, images: str, n: int, reuse: bool) -> list[list[dict]]:
    from physical.runs.pipeline import run_pipeline

    t = time.time()
    if not (reuse and (out / "base" / "generate" / "index.json").is_file()):
        run_pipeline(config(out, "base", images, n, {"source": "simulate"}), until="generate", log=lambda *a: None)
        print(f"generated {n} images x {sum(len(a['eps']) for a in ATTACKS)} attacks in {time.time() - t:.0f} s",
              flush=True)
    groups = print_groups(n)
    for g, attacks in enumerate(groups):  # one generate, printed in runs that fit the sheets' marker ids
        if not (out / f"base-{g}" / "print" / "sheets.pdf").is_file():
            shutil.rmtree(out / f"base-{g}", ignore_errors=True)
            shutil.copytree(out / "base", out / f"base-{g}")
            run_pipeline(config(out, f"base-{g}", images, n, {"source": "simulate"}, attacks), until="print",
                         log=lambda *a: None)
    return groups


def calibrations(out: Path, vdir: Path, variant: str, counts: list[int], threads: int) -> dict[int, Path]:
    """{number of chart photos: colour.json} from the first c of one set of the variant's chart photos."""
    if not (out / "targets" / "colour-chart.pdf").is_file():
        subprocess.run(["physical", "calibrate", "targets", "--out", str(out / "targets")], check=True,
                       stdout=subprocess.DEVNULL)
    t = time.time()
    photos = indepsim.photograph_pdf(out / "targets" / "colour-chart.pdf", vdir / "chart", photos=max(counts),
                                     seed=1000, prefix="chart", variant=variant, workers=threads)
    print(f"  {variant}: {len(photos)} chart photos in {time.time() - t:.0f} s", flush=True)
    cals = {}
    for c in sorted(set(counts)):
        folder, cal = vdir / f"chart-{c}", vdir / f"colour-{c}.json"
        if not cal.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for p in photos[:c]:
                os.symlink(p.resolve(), folder / p.name)
            subprocess.run(["physical", "calibrate", "colour", "--source", str(folder), "--out", str(cal)], check=True,
                           stdout=subprocess.DEVNULL)
        cals[c] = cal
    return cals


def classified(out: Path, vdir: Path, name: str, cfg, base: str) -> list[dict]:
    """Capture (a folder of photos), align and classify a copy of the printed run `base`; its records."""
    from physical.runs.pipeline import run_pipeline
    from physical.rundir import RunDir
    from physical.stages.classify import load_records

    if not (vdir / name / "classify" / "predictions.json").is_file():
        shutil.rmtree(vdir / name, ignore_errors=True)
        shutil.copytree(out / base, vdir / name)
        t = time.time()
        run_pipeline(cfg, from_stage="capture", until="classify", log=lambda *a: None)
        print(f"  {vdir.name}/{name}: aligned, classified in {time.time() - t:.0f} s", flush=True)
    return load_records(RunDir(vdir / name))


def simulated_photos(base: Path, where: Path, cfg) -> Path:
    """Photos of `base`'s printed sheets through physical's simulator with `cfg`'s capture channel
    (kept when complete)."""
    from physical.rundir import RunDir
    from physical.sim.print_camera import simulate_stage

    photos, done = where / "capture" / "photos", where / "capture" / "simulated.json"
    if not done.is_file() or "seed" not in json.loads(done.read_text()):  # the final file has the seed
        shutil.rmtree(where, ignore_errors=True)
        shutil.copytree(base / "print", where / "print")
        t = time.time()
        simulate_stage(RunDir(where), cfg)
        print(f"  {where.parent.name}/{where.name}: {len(list(photos.glob('*.jpg')))} simulated photos in "
              f"{time.time() - t:.0f} s", flush=True)
    return photos


def group_rows(a, out: Path, vdir: Path, variant: str, g: int, attacks: list[dict],
               cals: dict[int, Path]) -> list[dict]:
    """Every record of print group g on one variant: measured and simulated outcomes, survival draws."""
    from physical.rundir import RunDir

    images, n = str(out / "images"), a.n_images
    t = time.time()
    indepsim.photograph_pdf(out / f"base-{g}" / "print" / "sheets.pdf", vdir / f"photos-{g}", photos=1,
                            seed=2000 + 100 * g, prefix="sheet", variant=variant, workers=a.threads)
    print(f"  {variant}: independent photos of group {g} in {time.time() - t:.0f} s", flush=True)
    measured = classified(out, vdir, f"measured-{g}", config(
        vdir, f"measured-{g}", images, n, {"source": f"folder:{vdir / f'photos-{g}'}"}, attacks), f"base-{g}")
    calibrated = {"source": "simulate", "channel": {"calibration": str(cals[a.chart]), "halftone_lpi": a.halftone_lpi}}
    folder = simulated_photos(out / f"base-{g}", vdir / f"predicted-{g}-photos",
                              config(vdir, f"predicted-{g}-photos", images, n, calibrated, attacks))
    predicted = classified(out, vdir, f"predicted-{g}", config(
        vdir, f"predicted-{g}", images, n, {"source": f"folder:{folder}"}, attacks), f"base-{g}")
    rows = fidelity_tables.record_rows(measured, predicted, variant, g)
    if a.draws > 0:
        t = time.time()
        for c, cal in cals.items():
            mine = rows if c == a.chart or not a.curve_attacks else [r for r in rows if r["attack"] in a.curve_attacks]
            cfg = config(vdir, f"measured-{g}", images, n, {"source": "simulate", "channel": {"calibration": str(cal)}},
                         attacks)
            fidelity_tables.add_draws(mine, RunDir(vdir / f"measured-{g}"), cfg, DEVICE, a.draws, c)
        print(f"  {variant}: {a.draws} draws x {len(cals)} calibration(s) of group {g} in {time.time() - t:.0f} s",
              flush=True)
    return rows


def run(a) -> None:
    out = Path(a.out) if a.part == (1, 1) else Path(a.out) / f"part-{a.part[0]}-of-{a.part[1]}"
    if not a.reuse:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    source = Path(a.source or IMAGENET_100).resolve()
    a.n_images = part_images(source, a.images, a.part, out / "images")
    groups = generate_and_print(out, str(out / "images"), a.n_images, a.reuse)
    print(f"part {a.part[0]} of {a.part[1]}: {a.n_images} images of {source}; printed in {len(groups)} runs",
          flush=True)
    counts = sorted(set(a.charts) | {a.chart})
    rows, times = [], {}
    for variant in a.variants:
        tv = time.time()
        cals = calibrations(out, out / variant, variant, counts, a.threads)
        for g, attacks in enumerate(groups):
            rows += group_rows(a, out, out / variant, variant, g, attacks, cals)
        times[variant] = round(time.time() - tv, 1)
    meta = {"images": a.n_images, "source": str(source), "part": list(a.part), "variants": a.variants,
            "chart": a.chart, "charts": counts, "draws": a.draws, "halftone_lpi": a.halftone_lpi,
            "threads": a.threads, "device": DEVICE, "seconds": round(time.time() - t0, 1), "seconds_by_variant": times}
    if a.reuse and (out / "rows.json").is_file():  # another variant added to the same images: keep the others
        old = json.loads((out / "rows.json").read_text())
        rows = [r for r in old["rows"] if r["variant"] not in a.variants] + rows
        meta["variants"] = sorted(set(old["meta"]["variants"]) | set(a.variants))
        meta["seconds_by_variant"] = {**old["meta"]["seconds_by_variant"], **times}
        meta["seconds"] = round(sum(meta["seconds_by_variant"].values()), 1)
    (out / "rows.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    fidelity_tables.report([meta], rows)
    print(f"({time.time() - t0:.0f} s in all; every image's outcomes: {out / 'rows.json'})")


def parse_part(text: str) -> tuple[int, int]:
    try:
        k, m = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"--part {text!r}: expected K/M, e.g. 1/4") from None
    if not 1 <= k <= m:
        raise SystemExit(f"--part {text!r}: K must be 1 .. M")
    return k, m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=64, help="images of --source (a stratified sample), over all parts")
    p.add_argument("--source", default=None, help="an image folder with labels.csv (default ../shared/imagenet-100)")
    p.add_argument("--variants", default="phone", help="the independent simulator's printers and cameras, "
                   f"comma-separated ({', '.join(sorted(indepsim.VARIANTS))})")
    p.add_argument("--chart", type=int, default=6, help="chart photos of the calibration the predictions use")
    p.add_argument("--charts", default="", help="also calibrate from the first 1, 2, ... of the chart photos "
                   "(comma-separated) and score each calibration's survival draws: the chart-count curve")
    p.add_argument("--curve-attacks", default="", help="score the chart-count curve on these attack labels only "
                   "(comma-separated; default all): its draws are the costly part")
    p.add_argument("--draws", type=int, default=8, help="channel draws per adversarial image (0: no forecast)")
    p.add_argument("--part", default="1/1", help="K/M: run the K-th of M interleaved shares of the images")
    p.add_argument("--merge", nargs="+", metavar="DIR", help="print the tables of these runs' rows.json together")
    p.add_argument("--out", default="/tmp/physical-fidelity")
    p.add_argument("--halftone-lpi", type=float, default=None, help="the simulator prints with this halftone screen")
    p.add_argument("--reuse", action="store_true", help="keep what --out holds and add what is missing")
    p.add_argument("--device", default="cpu", help="run.device of every run (cpu, cuda, ...)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if a.merge:
        metas, rows = fidelity_tables.load_rows([Path(d) for d in a.merge])
        fidelity_tables.report(metas, rows)
        return
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    bad = [v for v in a.variants if v not in indepsim.VARIANTS]
    if bad or not a.variants:
        raise SystemExit(f"--variants: {bad or a.variants} not among {', '.join(sorted(indepsim.VARIANTS))}")
    a.charts = [int(v) for v in a.charts.split(",") if v.strip()]
    a.curve_attacks = {v.strip() for v in a.curve_attacks.split(",") if v.strip()}
    a.part = parse_part(a.part)
    setup(a.threads)
    global DEVICE
    DEVICE = a.device
    run(a)


if __name__ == "__main__":
    main()
