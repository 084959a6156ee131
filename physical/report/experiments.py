"""The experiments' part of the report: report.json sections, CSV tables and HTML sections.

The report stage calls `attach(run, report)`; it reads ``experiments/*.json`` (whatever the
experiments stage wrote), adds the sections ``transformations``, ``defences``, ``transfer``,
``generalisation`` (and ``digits``) to report.json, and returns the CSV tables and HTML blocks.
"""
from __future__ import annotations

import csv
import io
import json

from physical.rundir import RunDir, read_json
from physical.report import plots
from physical.report.html import _ENV
from physical.report.intervals import add_intervals

SECTIONS = ("transformations", "defences", "transfer", "generalisation", "digits")

# the columns that identify a row of each table (used by the CSVs' order and `physical compare`)
KEYS = {
    "kurakin": ("model", "attack_label"),
    "transformations": ("model", "attack_label", "transformation", "strength"),
    "defences": ("model", "defence", "attack_label"),
    "transfer": ("source", "target", "attack_label"),
    "generalisation": ("model", "attack_label"),
    "digits": ("model",),
}


def load(run: RunDir) -> dict:
    out = {}
    for name in SECTIONS:
        p = run.root / "experiments" / f"{name}.json"
        if p.is_file():
            out[name] = read_json(p)
    return out


def rows_csv(rows: list[dict]) -> str:
    """Flat rows as CSV (nested values as JSON, None as empty)."""
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in rows:
        vals = []
        for c in cols:
            v = r.get(c)
            vals.append("" if v is None else json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
        w.writerow(vals)
    return buf.getvalue()


def digits_csv(res: dict) -> str:
    return rows_csv(res["rows"])


def _macros():
    return _ENV.get_template("experiments.html").module


def notes(sections: dict, records: list[dict]) -> list[str]:
    """What the experiments left out, and why (for the report's 'excluded' section)."""
    out = []
    n_items = len(records)
    no_photo = sum(r["pred"].get("photo_adv") is None for r in records)
    if ("defences" in sections or "transfer" in sections) and no_photo:
        out.append(f"photo columns of defences and transfer: {no_photo} of {n_items} adversarial cell(s) have no "
                   "accepted crop and are left out of those columns")
    d = sections.get("defences")
    if d:
        not_run = sorted({r["attack_label"] for r in d["rows"] if not r["adaptive"]})
        if not_run:
            out.append("defences: no adaptive attack was run for " + ", ".join(not_run)
                       + " (experiments.defences.adaptive lists the attacks that are)")
    g = sections.get("generalisation")
    if g:
        for r in g["rows"]:
            if r["n_clean_correct_top1"] < r["n_images"]:
                out.append(f"generalisation {r['model']}/{r['attack_label']}: "
                           f"{r['n_images'] - r['n_clean_correct_top1']} "
                           f"of {r['n_images']} image(s) are misclassified when clean and are not counted (top-1)")
                break
    return out


def attach(run: RunDir, report: dict, records: list[dict]) -> tuple[dict[str, str], list[str]]:
    """Add the experiments' sections to `report` (in place); returns (CSV file name -> text, HTML blocks)."""


    sections = load(run)
    for name, sec in sections.items():
        add_intervals(name, sec.get("rows") or [])  # every rate with its 95 % interval
        add_intervals(name, sec.get("untransformed") or [])  # the curves' start (issue 27.4)
        report[name] = sec
    report["experiments"] = {
        "sections": list(sections),
        "seconds": {k: v.get("seconds") for k, v in sections.items()},
        "notes": notes(sections, records),
    }
    csvs = {f"{name}.csv": rows_csv(sec["rows"]) for name, sec in sections.items()}
    m = _macros()
    html = []
    eps_plot = plots.eps_plots(report.get("kurakin", []))
    if eps_plot:
        html.append(str(m.eps_section(eps_plot)))
    if "transformations" in sections:
        t = sections["transformations"]
        html.append(str(m.transformations_section(t, plots.transformation_plots(
            t["rows"], t.get("untransformed"), t.get("transformations")))))
    if "defences" in sections:
        d = sections["defences"]
        html.append(str(m.defences_section(d, plots.defence_plot(d["rows"]))))
    if "transfer" in sections:
        html.append(str(m.transfer_section(sections["transfer"])))
    if "generalisation" in sections:
        g = sections["generalisation"]
        html.append(str(m.generalisation_section(g, plots.generalisation_plot(g["rows"]))))
    if "digits" in sections:
        d = sections["digits"]
        html.append(str(m.digits_section(d, plots.digits_plots(d))))
    return csvs, html


def digits_html(res: dict) -> str:
    """A self-contained page for the stand-alone digits experiment."""

    block = str(_macros().digits_section(res, plots.digits_plots(res)))
    return _ENV.get_template("page.html").render(title="physical · digits: training-side mitigations", body=block)
