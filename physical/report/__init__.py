"""The report stage: Kurakin's table (report.json, CSV, a printed table) and a self-contained HTML page,
with the experiments' sections (transformations, defences, transfer, generalisation, digits) when the
experiments stage wrote them.

report.json fields are documented in README.md ("report.json").
"""
from __future__ import annotations

import csv
import io

import numpy as np

from ..classify import load_records
from ..metrics import CONDITIONS, kurakin_table
from ..models import class_names
from ..rundir import RunDir, read_image, read_json, write_json, write_text
from .html import data_uri as _data_uri
from .reference import reference_for


def _pct(v) -> str:
    return "  -  " if v is None else f"{100 * v:5.1f}"


def _acc(row, case, cond, k):
    return row[case]["accuracy"][cond][f"top{k}"]["acc"]


def _dr(row, case, k):
    return row[case]["destruction"][f"top{k}"]["rate"]


def text_table(rows: list[dict]) -> str:
    """Kurakin's first table as text: accuracy top-1/top-5 per condition and destruction rate."""
    head = (f"{'model':<20} {'attack':<16} {'n':>3}  {'digital clean':>13} {'digital adv':>13} "
            f"{'photo clean':>13} {'photo adv':>13}  {'destr. avg':>13} {'destr. pref':>13} {'pref n':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = [f"{_pct(_acc(r, 'average', c, 1))}/{_pct(_acc(r, 'average', c, 5))}" for c in CONDITIONS]
        d_avg = f"{_pct(_dr(r, 'average', 1))}/{_pct(_dr(r, 'average', 5))}"
        d_pre = f"{_pct(_dr(r, 'prefiltered', 1))}/{_pct(_dr(r, 'prefiltered', 5))}"
        lines.append(f"{r['model']:<20} {r['attack_label']:<16} {r['average']['n']:>3}  "
                     + " ".join(f"{c:>13}" for c in cells) + f"  {d_avg:>13} {d_pre:>13} {r['prefiltered']['n']:>6}")
    lines.append("accuracy and destruction rate in %, top-1/top-5; '-' = no image in that condition")
    return "\n".join(lines)


def csv_table(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = ["model", "attack", "eps", "case", "n"]
    cols += [f"{c}_top{k}" for c in CONDITIONS for k in (1, 5)]
    cols += ["destruction_top1", "destruction_top5", "destruction_n"]
    w.writerow(cols)
    for r in rows:
        for case in ("average", "prefiltered"):
            vals = [r["model"], r["attack_label"], r["eps"], case, r[case]["n"]]
            vals += [_acc(r, case, c, k) for c in CONDITIONS for k in (1, 5)]
            vals += [_dr(r, case, 1), _dr(r, case, 5), r[case]["destruction"]["top1"]["n"]]
            w.writerow(["" if v is None else v for v in vals])
    return buf.getvalue()


def _top5(pred, label) -> list[dict]:
    names = class_names()
    if pred is None:
        return []
    return [{"name": names[c], "prob": p, "hit": c == label} for c, p in zip(pred["top"], pred["prob"])]


def gallery(run: RunDir, records: list[dict], n: int) -> list[dict]:
    """Cells for the HTML gallery: clean, adversarial, amplified perturbation, photo crops, top-5 of each."""
    index = {it["key"]: it for it in read_json(run.root / "generate" / "index.json")["items"]}
    out = []
    for r in records[:n]:
        it = index[r["key"]]
        clean = read_image(run.root / it["clean"])
        adv = read_image(run.root / it["adv"])
        diff = adv.astype(np.int16) - clean.astype(np.int16)
        amp = max(1, int(np.abs(diff).max()))
        pert = np.clip(127.5 + diff * (127.5 / amp), 0, 255).astype(np.uint8)
        entry = {"key": r["key"], "label": class_names()[r["label"]], "label_known": r["label_known"],
                 "panels": [
                     {"title": "clean", "img": _data_uri(clean), "top5": _top5(r["pred"]["digital_clean"], r["label"])},
                     {"title": "adversarial", "img": _data_uri(adv), "top5": _top5(r["pred"]["digital_adv"], r["label"])},
                     {"title": f"perturbation x{127.5 / amp:.0f}", "img": _data_uri(pert), "top5": []},
                 ]}
        for role in ("clean", "adv"):
            crop = r.get("crops", {}).get(role)
            title = f"photo {'clean' if role == 'clean' else 'adversarial'}"
            if crop:
                entry["panels"].append({"title": title, "img": _data_uri(read_image(run.root / crop)),
                                        "top5": _top5(r["pred"][f"photo_{role}"], r["label"])})
            else:
                entry["panels"].append({"title": title + " (missing)", "img": None, "top5": []})
        out.append(entry)
    return out


def report_stage(run: RunDir, cfg, device=None) -> dict:
    records = load_records(run)
    rows = kurakin_table(records, cfg.classify.prefilter_confidence)
    for r in rows:
        r["reference"] = reference_for(r["attack"], r["eps"]) if r["attack_label"].split("_eps")[0] == r["attack"] else None
    align_path = run.root / "align" / "crops.json"
    align = read_json(align_path) if align_path.is_file() else {"crops": [], "photos": [], "missing": []}
    excluded = [{"photo": c["photo"], "sheet": c["sheet"], "slot": c["slot"], "item": c["item"], "role": c["role"],
                 "reason": c["reason"]} for c in align["crops"] if not c.get("accepted")]
    unlabelled = sorted({r["image"] for r in records if not r["label_known"]})
    report = {
        "run_id": run.manifest().get("run_id"),
        "name": cfg.run.name,
        "kurakin": rows,
        "labels": {
            "unlabelled_images": unlabelled,
            "note": ("images without a known true class use the clean top-1 prediction as their label, so their "
                     "digital clean accuracy is 100 % by construction") if unlabelled else None,
        },
        "align": {
            "photos": len(align["photos"]),
            "photos_skipped": [p for p in align["photos"] if p.get("status") != "ok"],
            "cells_missing": align["missing"],
            "crops_excluded": excluded,
        },
    }
    from ..experiments.report import SECTIONS, attach
    from .beyond import SECTIONS as BEYOND, attach as attach_beyond

    csvs, sections = attach(run, report, records)  # the experiments' sections, tables and plots
    more_csvs, more = attach_beyond(run, report, records)  # universal, patch, black box, tv
    csvs.update(more_csvs)
    sections = more + sections
    out = run.stage_dir("report")
    write_json(out / "report.json", report)
    write_text(out / "kurakin.csv", csv_table(rows))
    for name in SECTIONS + BEYOND:  # a table of an experiment no longer run must not linger
        if f"{name}.csv" not in csvs:
            (out / f"{name}.csv").unlink(missing_ok=True)
    for name, text in csvs.items():
        write_text(out / name, text)
    table = text_table(rows)
    write_text(out / "table.txt", table + "\n")
    if cfg.report.html:
        from .html import render_html

        write_text(out / "report.html", render_html(report, gallery(run, records, cfg.report.gallery), sections))
    return {"table": table, "report": str(out / "report.json")}
