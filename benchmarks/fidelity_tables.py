"""benchmarks/fidelity.py's per-image rows and the tables printed from them (one run, or parts merged).

A row is one adversarial image of one print group on one variant of the independent simulator:
its digital outcomes, the measured photo's (m_*), the calibrated simulator's photo's (s_*), and the
survival draws' fraction per calibration (draws: {chart photos: fraction}).

Tests, and why they are paired the way they are:
- aggregate destruction, measured vs the simulated photo: each image has one measured and one
  simulated photo, so McNemar's test on the images both photographed is paired per image;
- the survival forecast (a probability per image) vs the photo's outcome: the paired statistic is
  the per-image difference observed - predicted, its mean's 95 % interval a bootstrap over images
  (McNemar does not apply: the prediction is not one draw);
- pooled over variants, an image counts once per variant: intervals resample images (bootstrap).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from physical.measure.forecast import MIN_ITEMS, expected_calibration_error, fit_forecast
from physical.measure.metrics import correct
from physical.measure.stats import brier, mcnemar, reliability, wilson
from physical.measure.survival import predict_items, works

BOOT = 2000
GOAL_RATE, GOAL_CLEAN = 0.05, 0.03


def record_rows(measured: list[dict], predicted: list[dict], variant: str, group: int) -> list[dict]:
    """One row per measured record, joined with the simulated photo's record of the same key."""
    sim = {r["key"]: r for r in predicted}
    rows = []
    for r in measured:
        s, lab = sim.get(r["key"]), r["label"]
        rows.append({
            "variant": variant, "group": group, "attack": r["attack_label"], "image": r["image"], "key": r["key"],
            "model": r["model"], "label": lab, "target": r.get("target"),
            "d_clean": correct(r["pred"]["digital_clean"], lab, 1), "d_adv": correct(r["pred"]["digital_adv"], lab, 1),
            "d_works": works(r, "digital_adv"),
            "m_adv": correct(r["pred"].get("photo_adv"), lab, 1),
            "m_clean": correct(r["pred"].get("photo_clean"), lab, 1),
            "m_works": works(r),
            "s_adv": correct(s["pred"].get("photo_adv"), lab, 1) if s else None,
            "s_clean": correct(s["pred"].get("photo_clean"), lab, 1) if s else None,
            "s_works": works(s) if s else None, "draws": {}})
    return rows


def scored(rows: list[dict]) -> list[dict]:
    """Rows whose survival means something: the clean image right and the attack working digitally."""
    return [r for r in rows if r["d_clean"] and r["d_works"]]


def add_draws(rows: list[dict], run, cfg, device: str, draws: int, charts: int) -> None:
    """Each scored row's survival fraction over `draws` draws of `cfg`'s channel (a calibration from
    `charts` chart photos)."""
    items = scored(rows)
    for r, p in zip(items, predict_items(run, cfg, device, items, draws) if items else [], strict=True):
        r["draws"][str(charts)] = p


def load_rows(dirs: list[Path]) -> tuple[list[dict], list[dict]]:
    metas, rows = [], []
    for d in dirs:
        doc = json.loads((d / "rows.json" if d.is_dir() else d).read_text())
        metas.append(doc["meta"])
        rows += doc["rows"]
    return metas, rows


def fold(image: str) -> int:
    return int(hashlib.sha256(image.encode()).hexdigest(), 16) % 2


def add_mapped(rows: list[dict], charts: int) -> None:
    """row["mapped"]: the draws' fraction through an isotonic map fitted, per variant, on the simulated
    photos' outcomes of the images of the other fold (cross-fitted; the measured photos never enter)."""
    key = str(charts)
    for variant in {r["variant"] for r in rows}:
        mine = [r for r in scored(rows) if r["variant"] == variant and key in r["draws"]]
        for f in (0, 1):
            fit = [r for r in mine if fold(r["image"]) != f and r["s_works"] is not None]
            try:
                fmap = fit_forecast([r["draws"][key] for r in fit], [r["s_works"] for r in fit])
            except ValueError:
                fmap = None
            for r in mine:
                if fold(r["image"]) == f:
                    r["mapped"] = fmap([r["draws"][key]])[0] if fmap else None


def bootstrap(each: dict, other: dict | None = None, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval, resampling images: of the pooled rate of `each` (image -> outcomes
    or values), or of the difference of pooled means other - each on the images both hold."""
    keys = sorted(set(each) & set(other)) if other is not None else sorted(each)
    if not keys:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(keys), size=(BOOT, len(keys)))

    def pooled(d):
        k = np.array([sum(d[i]) for i in keys], float)
        n = np.array([len(d[i]) for i in keys], float)
        return k[idx].sum(1) / np.maximum(n[idx].sum(1), 1)

    stat = pooled(each) if other is None else pooled(other) - pooled(each)
    lo, hi = np.percentile(stat, [2.5, 97.5])
    return float(lo), float(hi)


def by_image(pairs: list[tuple[str, float]]) -> dict:
    out: dict = {}
    for image, v in pairs:
        out.setdefault(image, []).append(float(v))
    return out


def _ci(k: int, n: int) -> str:
    lo, hi = wilson(k, n) or (float("nan"), float("nan"))
    return f"{k / n if n else float('nan'):.2f} [{lo:.2f}, {hi:.2f}]"


def destruction_table(rows: list[dict], pooled: bool) -> list[str]:
    """Per attack: measured vs simulated-photo top-1 destruction, the paired test, the 0.05 goal."""
    lines = [f"{'attack':<18}{'measured':>20}{'predicted (sim photo)':>24}{'n':>5}{'pred - meas':>12}"
             f"{'paired test':>20}{'|diff| <= 0.05':>16}"]
    for attack in sorted({r["attack"] for r in rows}):
        sel = [r for r in rows if r["attack"] == attack and r["d_clean"] and not r["d_adv"]
               and r["m_adv"] is not None and r["s_adv"] is not None]
        if not sel:
            continue
        m, s = [bool(r["m_adv"]) for r in sel], [bool(r["s_adv"]) for r in sel]
        diff = (sum(s) - sum(m)) / len(sel)
        if pooled:  # an image counts once per variant: intervals resample images
            em, es = (by_image([(r["image"], r[k]) for r in sel]) for k in ("m_adv", "s_adv"))
            lo, hi = bootstrap(em, es)
            cm, cs = (f"{sum(v) / len(v):.2f} [{a:.2f}, {b:.2f}]"
                      for v, (a, b) in ((m, bootstrap(em)), (s, bootstrap(es))))
            test = f"[{lo:+.2f}, {hi:+.2f}]{' *' if lo > 0 or hi < 0 else '  '}"
        else:
            cm, cs = _ci(sum(m), len(m)), _ci(sum(s), len(s))
            t = mcnemar(m, s)
            test = f"McNemar p {t['p']:.2f}{' *' if t['significant'] else '  '}"
        lines.append(f"{attack:<18}{cm:>20}{cs:>24}{len(sel):>5}{diff:>+12.2f}{test:>20}"
                     f"{'yes' if abs(diff) <= GOAL_RATE else 'no':>16}")
    cells = [r for r in rows if r["m_clean"] is not None and r["s_clean"] is not None]
    if cells:
        em, es = (by_image([(r["image"], r[k]) for r in cells]) for k in ("m_clean", "s_clean"))
        rm, rs = (sum(sum(v) for v in e.values()) / len(cells) for e in (em, es))
        (a, b), (c, d), (lo, hi) = bootstrap(em), bootstrap(es), bootstrap(em, es)
        lines.append(f"{'photo clean top-1':<18}{f'{rm:.2f} [{a:.2f}, {b:.2f}]':>20}"
                     f"{f'{rs:.2f} [{c:.2f}, {d:.2f}]':>24}"
                     f"{len(cells):>5}{rs - rm:>+12.2f}{f'[{lo:+.2f}, {hi:+.2f}]':>20}"
                     f"{'yes' if abs(rs - rm) <= GOAL_CLEAN else 'no':>16}  (<= 0.03; n: cells)")
    return lines


def forecast_table(rows: list[dict], charts: int) -> list[str]:
    """Per attack: the survival forecast (draws' fraction, and through the cross-fitted map) against
    the measured photo: Brier next to the constant forecast, ECE, the mean difference's interval."""
    key = str(charts)
    lines = [f"{'attack':<18}{'n':>4}{'observed':>10}{'draws':>7}{'mapped':>8}{'Brier const':>12}{'draws':>7}"
             f"{'mapped':>8}{'<= half':>8}{'ECE draws':>10}{'mapped':>8}{'obs - mapped [95 %]':>22}"]
    sel_all = [r for r in scored(rows)
               if r["m_works"] is not None and key in r["draws"] and r.get("mapped") is not None]
    for attack in sorted({r["attack"] for r in sel_all}) + ["all"]:
        sel = [r for r in sel_all if attack in ("all", r["attack"])]
        if not sel:  # no map: fewer scored images than a map needs
            lines.append(f"{attack:<18} no forecast map (fewer than {MIN_ITEMS} scored images per fold)")
            continue
        obs = [bool(r["m_works"]) for r in sel]
        raw, mapped = [r["draws"][key] for r in sel], [r["mapped"] for r in sel]
        rate = sum(obs) / len(obs)
        const, b_raw, b_map = brier([rate] * len(obs), obs), brier(raw, obs), brier(mapped, obs)
        varies = 0 < rate < 1
        half = ("yes" if b_map is not None and b_map <= const / 2 else "no") if varies else "-"
        lo, hi = bootstrap(by_image([(r["image"], p) for r, p in zip(sel, mapped, strict=True)]),
                           by_image([(r["image"], o) for r, o in zip(sel, obs, strict=True)]))
        lines.append(f"{attack:<18}{len(sel):>4}{rate:>10.2f}{np.mean(raw):>7.2f}{np.mean(mapped):>8.2f}{const:>12.3f}"
                     f"{b_raw:>7.3f}{b_map:>8.3f}{half:>8}{expected_calibration_error(raw, obs):>10.3f}"
                     f"{expected_calibration_error(mapped, obs):>8.3f}"
                     f"{f'{rate - np.mean(mapped):+.2f} [{lo:+.2f}, {hi:+.2f}]':>22}")
    lines.append("reliability (all attacks): bin of the prediction, n, mean predicted, observed [Wilson 95 %], "
                 "the interval holds the mean predicted?")
    for name, pred in (("draws", [r["draws"][key] for r in sel_all]), ("mapped", [r["mapped"] for r in sel_all])):
        for b in reliability(pred, [bool(r["m_works"]) for r in sel_all]):
            inside = b["ci"][0] <= b["predicted"] <= b["ci"][1]
            lines.append(f"  {name:<7}[{b['bin'][0]:.1f}, {b['bin'][1]:.1f})  n {b['n']:4d}  predicted "
                         f"{b['predicted']:.2f}  observed {b['observed']:.2f} [{b['ci'][0]:.2f}, {b['ci'][1]:.2f}]"
                         f"  {'yes' if inside else 'NO'}")
    return lines


def chart_table(rows: list[dict], counts: list[int]) -> list[str]:
    """Per number of chart photos: |mean draws' survival - observed survival| per attack (no map), on the
    images every calibration's draws were scored on."""
    lines = [f"{'chart photos':<14}{'n':>5}{'mean |error|':>14}{'max |error|':>13}{'Brier':>8}  worst attack"]
    sel = [r for r in scored(rows) if r["m_works"] is not None and all(str(c) in r["draws"] for c in counts)]
    for c in counts if sel else []:  # the same images for every count
        errs = {}
        for attack in sorted({r["attack"] for r in sel}):
            mine = [r for r in sel if r["attack"] == attack]
            errs[attack] = abs(np.mean([r["draws"][str(c)] for r in mine]) - np.mean([r["m_works"] for r in mine]))
        worst = max(errs, key=lambda k: errs[k])
        b = brier([r["draws"][str(c)] for r in sel], [bool(r["m_works"]) for r in sel])
        lines.append(f"{c:<14}{len(sel):>5}{np.mean(list(errs.values())):>14.3f}{errs[worst]:>13.3f}{b:>8.3f}  {worst}")
    return lines


def report(metas: list[dict], rows: list[dict]) -> None:
    chart = metas[0]["chart"]
    counts = sorted({c for m in metas for c in m["charts"]})
    add_mapped(rows, chart)
    images = sum(m["images"] for m in metas)
    variants = sorted({r["variant"] for r in rows})
    print(f"\n{images} images ({', '.join(m['source'] for m in metas[:1])}), {len(metas)} part(s), variants "
          f"{', '.join(variants)}; calibration from {chart} chart photos")
    for name, sel in [(v, [r for r in rows if r["variant"] == v]) for v in variants] + (
            [("pooled over " + ", ".join(variants), rows)] if len(variants) > 1 else []):
        pooled = name.startswith("pooled")
        print(f"\n== {name}: top-1 destruction, measured (independent simulator) vs predicted (the calibrated "
              "channel's photo); rate [95 %: " + ("bootstrap over images" if pooled else "Wilson") + "]; "
              + ("the difference's bootstrap interval" if pooled else "McNemar's paired test") + " (* at 5 %)")
        print("\n".join(destruction_table(sel, pooled)))
        print(f"\n== {name}: per-image survival forecast ({metas[0]['draws']} draws; mapped: the isotonic map "
              "cross-fitted on the simulated photos) vs the measured photo")
        print("\n".join(forecast_table(sel, chart)))
        if len(counts) > 1:
            print(f"\n== {name}: prediction error against the number of chart photos (survival draws, no map)")
            print("\n".join(chart_table(sel, counts)))
    for m in metas:
        print(f"part {m['part'][0]}/{m['part'][1]}: {m['images']} images in {m['seconds']:.0f} s "
              f"({m['threads']} thread(s), {m['device']}; per variant {m['seconds_by_variant']})")


def figures(run_root: Path) -> dict:
    """A run's figures (benchmarks/presets.py): per attack label destruction {k, n, each: {image:
    destroyed}}; photo-clean top-1 over every clean cell and digital-clean top-1, {k, n}."""
    from physical.rundir import RunDir
    from physical.stages.classify import load_records

    rows = record_rows(load_records(RunDir(run_root)), [], "", 0)
    out: dict = {}
    for r in rows:
        row = out.setdefault(r["attack"], {"k": 0, "n": 0, "each": {}})
        if r["m_adv"] is not None and r["d_clean"] and not r["d_adv"]:
            row["n"] += 1
            row["k"] += int(r["m_adv"])
            row["each"][r["image"]] = bool(r["m_adv"])
    clean = [bool(r["m_clean"]) for r in rows if r["m_clean"] is not None]
    digital = {r["image"]: bool(r["d_clean"]) for r in rows}
    out["photo clean top-1"] = {"k": sum(clean), "n": len(clean)}
    out["digital clean top-1"] = {"k": sum(digital.values()), "n": len(digital)}
    return out
