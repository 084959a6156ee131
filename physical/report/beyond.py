"""The report's sections for the attacks beyond Kurakin's: `universal` (uap), `patch`, `black_box`
(square) and `tv` (survival against the total-variation weight), in report.json, as CSV tables and
as HTML blocks. Fields are listed in README.md ("report.json").

Every rate is ``{rate, k, n, ci}``: a fraction, its count, the images it is over, and the 95 % Wilson
interval (`physical.measure.stats.proportion`, as every rate of the report).

- *fooling* (universal): top-1 differs from the clean image's top-1; digitally (adversarial against
  clean image) and from photos (photo of the adversarial cell against photo of the clean cell);
- *targeted success* (patch): top-1 is the target, over images whose true class is not the target;
- *success* (black box): the attack's aim reached on the 8-bit image (untargeted: top-1 is not the
  true class; targeted: top-1 is the target); queries per success over the digital successes;
- *survival* (tv): of the images whose clean image is correct and adversarial image is not (top-1),
  the fraction whose photographed adversarial image is still wrong: 1 - Kurakin's destruction rate;
- *printed* (`physical.report.printed`): every printed artifact's success digitally, predicted by
  the channel's draws and on the photos, side by side.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from statistics import mean, median
from typing import Optional

import numpy as np

from physical.attacks.labels import AttackLabel
from physical import runfiles
from physical.rundir import RunDir, read_image, read_json
from physical.measure.stats import proportion
from physical.report.html import _ENV, data_uri
from physical.report.printed import count, printed_rows, top1

SECTIONS = ("universal", "patch", "black_box", "tv", "printed")


def rate(hits: int, n: int) -> dict:
    """A rate with its k, n and 95 % Wilson interval (None where n is 0), as every rate of the report."""
    return proportion(hits, n)


def _fooled(rec: dict, where: str):
    a, c = top1(rec, f"{where}_adv"), top1(rec, f"{where}_clean")
    return None if a is None or c is None else a != c


def _records_by(run: RunDir, records: list[dict]) -> tuple[dict, dict]:
    items = runfiles.load_index(run).by_key()
    by_label = defaultdict(list)
    for r in records:
        it = items[r["key"]]
        by_label[(it["model"], it["attack_label"])].append((r, it))
    return items, by_label


def _done(run: RunDir, group: list) -> dict:
    """The record of the fit that made a fitted attack's images (its split, artifact and time)."""
    return read_json(run.root / group[0][1]["fit_record"])


def _fitted(run: RunDir, by_label: dict, attack: str):
    """(model, label, first item, fit record, control group) of every fitted entry of `attack`."""
    for (model, label), group in by_label.items():
        it0 = group[0][1]
        if it0.get("attack") == attack and not it0.get("control"):
            done = _done(run, group)
            yield model, label, group, it0, done, by_label.get((model, done["control_label"]), [])


def universal_rows(run: RunDir, by_label: dict) -> list[dict]:
    rows = []
    for model, label, group, it0, done, control in _fitted(run, by_label, "uap"):
        for split in ("fit", "unseen"):
            mine = [r for r, it in group if it["split"] == split]
            ctl = [r for r, it in control if it["split"] == split]
            rows.append({"model": model, "attack_label": label, "eps": it0["eps"], "split": split,
                         "n_fit": done["n_fit"], "fit_source": done.get("fit_source"),
                         "fit_seconds": done.get("fit_seconds"),
                         "fooling_digital": count(_fooled(r, "digital") for r in mine),
                         "fooling_photo": count(_fooled(r, "photo") for r in mine),
                         "random_digital": count(_fooled(r, "digital") for r in ctl),
                         "random_photo": count(_fooled(r, "photo") for r in ctl),
                         "picture": done["picture"], "amplification": done.get("amplification")})
    return rows


def patch_rows(run: RunDir, by_label: dict) -> list[dict]:
    rows = []
    for model, label, group, it0, done, control in _fitted(run, by_label, "patch"):
        target = it0["target"]

        def success(recs, where, target=target):
            return count(None if r["label"] == target or top1(r, f"{where}_adv") is None
                          else top1(r, f"{where}_adv") == target for r in recs)

        for split in ("fit", "unseen"):
            mine = [r for r, it in group if it["split"] == split]
            ctl = [r for r, it in control if it["split"] == split]
            rows.append({"model": model, "attack_label": label, "target": target, "split": split,
                         "fraction": AttackLabel.parse(label).fraction,
                         "n_fit": done["n_fit"], "fit_source": done.get("fit_source"),
                         "fit_seconds": done.get("fit_seconds"),
                         "success_digital": success(mine, "digital"), "success_photo": success(mine, "photo"),
                         "control_digital": success(ctl, "digital"), "control_photo": success(ctl, "photo"),
                         "picture": done["picture"], "pdf": done.get("pdf"), "patch_mm": done.get("patch_mm")})
    return rows


def black_box_rows(by_label: dict) -> list[dict]:
    rows = []
    for (model, label), group in by_label.items():
        it0 = group[0][1]
        if it0.get("attack") != "square":
            continue
        target = it0.get("target")

        def ok(r, where, target=target):
            top = top1(r, f"{where}_adv")
            return None if top is None else (top == target if target is not None else top != r["label"])

        wins = [it["queries"] for r, it in group if ok(r, "digital") and "queries" in it]
        rows.append({"model": model, "attack_label": label, "eps": it0["eps"], "target": target,
                     "budget": max((it.get("queries", 0) for _, it in group), default=0),
                     "success_digital": count(ok(r, "digital") for r, _ in group),
                     "success_photo": count(ok(r, "photo") for r, _ in group),
                     "queries_mean": mean(wins) if wins else None,
                     "queries_median": median(wins) if wins else None, "n_success": len(wins)})
    return rows


def _tv255(run: RunDir, items: list[dict]) -> Optional[float]:
    """Mean total variation of the 8-bit perturbations (0..255 units; `attacks.tv.total_variation`)."""
    vals = []
    for it in items:
        d = read_image(run.root / it["adv"]).astype(np.float32) - read_image(run.root / it["clean"]).astype(np.float32)
        vals.append(np.abs(np.diff(d, axis=1)).mean() + np.abs(np.diff(d, axis=0)).mean())
    return float(np.mean(vals)) if vals else None


def tv_rows(run: RunDir, by_label: dict) -> list[dict]:
    """Survival against the TV weight: every attack entry that has a `tv` twin (same attack and eps)."""
    families = defaultdict(list)
    for (model, label), group in by_label.items():
        it0 = group[0][1]
        if it0.get("fitted") or it0.get("attack") == "square":
            continue
        w = float(it0.get("tv") or 0)
        families[(model, label.replace(f"tv{w:g}-", "") if w > 0 else label)].append((w, label, group))
    rows = []
    for (model, base), variants in families.items():
        if not any(w > 0 for w, _, _ in variants):
            continue
        for w, label, group in sorted(variants, key=lambda v: v[0]):
            recs = [r for r, _ in group]
            fooled = [r for r in recs if top1(r, "digital_clean") == r["label"] != top1(r, "digital_adv")]
            rows.append({"model": model, "attack": base, "attack_label": label, "tv": w, "eps": group[0][1]["eps"],
                         "tv_perturbation": _tv255(run, [it for _, it in group]),
                         "fooled_digital": count(top1(r, "digital_adv") != r["label"] for r in recs),
                         "survival_photo": count(None if top1(r, "photo_adv") is None
                                                  else top1(r, "photo_adv") != r["label"] for r in fooled)})
    return rows


def flat(rows: list[dict]) -> str:
    """Rows as CSV: a rate becomes its value, n and interval columns."""
    out = []
    for r in rows:
        f = {}
        for k, v in r.items():
            if isinstance(v, dict) and "rate" in v:
                f[k], f[f"{k}_n"] = v["rate"], v["n"]
                f[f"{k}_lo"], f[f"{k}_hi"] = (v["ci"] or [None, None])
            else:
                f[k] = v
        out.append(f)
    buf = io.StringIO()
    if out:
        w = csv.DictWriter(buf, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows([{k: "" if v is None else v for k, v in f.items()} for f in out])
    return buf.getvalue()


def attach(run: RunDir, report: dict, records: list[dict]) -> tuple[dict[str, str], list[str]]:
    """Add the sections that have rows to `report` (in place); returns (CSV name -> text, HTML blocks)."""
    _, by_label = _records_by(run, records)
    sections = {"universal": universal_rows(run, by_label), "patch": patch_rows(run, by_label),
                "black_box": black_box_rows(by_label), "tv": tv_rows(run, by_label),
                "printed": printed_rows(by_label, report.get("survival"))}
    csvs, html = {}, []
    macros = _ENV.get_template("beyond.html").module
    for name, rows in sections.items():
        if not rows:
            continue
        report[name] = {"rows": rows}
        csvs[f"{name}.csv"] = flat(rows)
        pictures = {r["picture"]: data_uri(read_image(run.root / r["picture"])) for r in rows if r.get("picture")}
        html.append(str(getattr(macros, name)(report[name], pictures)))
    return csvs, html
