"""The report: the HTML page parses, is self-contained, and shows every table of report.json with the
same numbers; the CSV tables hold the same rows."""
import csv
import io
from html.parser import HTMLParser

import pytest

from physical.report.html import pct
from physical.rundir import read_json


class Tables(HTMLParser):
    """Collects, per data-table name, the text of each data-row, plus every src/href and the headings."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str | None] = []  # data-table of each open element (None if none)
        self.rows: dict[str, dict[str, str]] = {}
        self.row: tuple[str, str] | None = None
        self.row_depth = 0
        self.depth = 0
        self.links: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("img", "script", "link"):
            self.links.append(a.get("src") or a.get("href") or "")
        if "id" in a:
            self.ids.append(a["id"])
        if tag in ("img", "br", "meta", "link", "input"):
            return
        self.depth += 1
        table = a.get("data-table") or (self.stack[-1] if self.stack else None)
        self.stack.append(table)
        if "data-row" in a and table:
            self.row = (table, a["data-row"])
            self.row_depth = self.depth
            self.rows.setdefault(table, {}).setdefault(a["data-row"], "")

    def handle_endtag(self, tag):
        if tag in ("img", "br", "meta", "link", "input"):
            return
        if self.row and self.depth == self.row_depth:
            self.row = None
        self.depth -= 1
        self.stack.pop()

    def handle_data(self, data):
        if self.row:
            t, i = self.row
            self.rows[t][i] += data


@pytest.fixture(scope="module")
def page(tiny):
    run, _ = tiny
    html = (run.root / "report" / "report.html").read_text()
    p = Tables()
    p.feed(html)
    p.close()
    assert p.depth == 0 and not p.stack  # every element closed: the page parses
    return html, p, read_json(run.root / "report" / "report.json")


def test_report_json_has_every_section(page):
    _, _, rep = page
    for name in ("kurakin", "transformations", "defences", "transfer", "generalisation"):
        assert rep[name], name
    assert rep["experiments"]["sections"] == ["transformations", "defences", "transfer", "generalisation"]


def test_html_is_self_contained(page):
    html, p, _ = page
    assert p.links and all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for src in p.links)
    assert "http://" not in html and "https://" not in html
    # Kurakin's table first, then the plots and experiments, the gallery, and what was excluded
    order = ["kurakin", "eps", "transformations", "defences", "transfer", "generalisation", "gallery", "excluded"]
    assert [i for i in p.ids if i in order] == order


def test_html_shows_every_table_of_report_json_with_its_numbers(page):
    _, p, rep = page
    # Kurakin's table: one row per report row in both the average and prefiltered tables
    kur = p.rows["kurakin"]
    assert sorted(map(int, kur)) == list(range(len(rep["kurakin"])))
    for i, r in enumerate(rep["kurakin"]):
        acc = r["average"]["accuracy"]["digital_adv"]
        assert f"{pct(acc['top1']['acc'])} / {pct(acc['top5']['acc'])}" in kur[str(i)]
    checks = {
        "transformations": lambda r: [r["transformation"], f"{pct(r['destruction_top1'])} / {pct(r['destruction_top5'])}",
                                      f"{pct(r['adv_top1'])} / {pct(r['adv_top5'])}"],
        "defences": lambda r: [r["defence"], f"{pct(r['clean_top1'])} → {pct(r['defended_clean_top1'])}",
                               f"{pct(r['adv_top1'])} → {pct(r['defended_adv_top1'])}", pct(r["adaptive_adv_top1"]),
                               f"{pct(r['photo_adv_top1'])} → {pct(r['defended_photo_adv_top1'])}"],
        "transfer": lambda r: [f"{pct(r['adv_top1'])} / {pct(r['adv_top5'])}",
                               f"{pct(r['photo_adv_top1'])} / {pct(r['photo_adv_top5'])}"],
        "generalisation": lambda r: [f"{pct(r['cross_fool_top1'])} / {pct(r['cross_fool_top5'])}",
                                     f"{pct(r['random_fool_top1'])} / {pct(r['random_fool_top5'])}"],
    }
    for name, want in checks.items():
        rows = rep[name]["rows"]
        shown = p.rows[name]
        assert sorted(map(int, shown)) == list(range(len(rows))), name
        for i, r in enumerate(rows):
            for text in want(r):
                assert text in shown[str(i)], (name, i, text, shown[str(i)])


def test_csv_tables_hold_the_rows(tiny):
    run, _ = tiny
    rep = read_json(run.root / "report" / "report.json")
    for name in ("transformations", "defences", "transfer", "generalisation"):
        rows = list(csv.DictReader(io.StringIO((run.root / "report" / f"{name}.csv").read_text())))
        assert len(rows) == len(rep[name]["rows"]), name
        for got, want in zip(rows, rep[name]["rows"]):
            for k, v in want.items():
                if isinstance(v, float):
                    assert float(got[k]) == pytest.approx(v), (name, k)
                elif v is None:
                    assert got[k] == ""


def test_plots_are_embedded(page):
    html, _, _ = page
    for alt in ("accuracy and destruction rate against eps", "destruction rate against transformation strength",
                "accuracy with and without each defence", "fool rate of transferred and random perturbations"):
        assert f'alt="{alt}"' in html


def test_switched_off_experiment_leaves_no_stale_table(tiny, tmp_path):
    """Switching a sub-experiment off removes its JSON, CSV and HTML section on the next run."""
    import shutil

    import torch

    from tests.experiment_run import EXPERIMENTS, config
    from physical.stages.experiments import experiments_stage
    from physical.stages.report import report_stage
    from physical.rundir import RunDir

    run0, _ = tiny
    root = tmp_path / "copy"
    shutil.copytree(run0.root, root / "tiny")
    run = RunDir(root / "tiny")
    cfg = config(root, {**EXPERIMENTS, "generalisation": {"enabled": False}, "transfer": {"enabled": False}})
    summary = experiments_stage(run, cfg, torch.device("cpu"))
    assert summary["classified"] == 0  # all from the cache that came with the copy
    report_stage(run, cfg)
    rep = read_json(run.root / "report" / "report.json")
    assert "generalisation" not in rep and "transfer" not in rep and rep["defences"]
    assert not (run.root / "report" / "transfer.csv").exists()
    assert 'data-table="transfer"' not in (run.root / "report" / "report.html").read_text()


def _rates(row):
    """Every rate dict of a Kurakin row (case, name, top-k) -> dict."""
    for case in ("average", "prefiltered"):
        for c, v in row[case]["accuracy"].items():
            for k, x in v.items():
                yield (case, c, k), x
        for m in ("destruction", "physical_success"):
            for k, x in row[case][m].items():
                yield (case, m, k), x


def test_every_rate_carries_n_and_a_95_interval(tiny, page):
    from physical.report.tables import rate

    run, _ = tiny
    _, p, rep = page
    csv_rows = list(csv.DictReader(io.StringIO((run.root / "report" / "kurakin.csv").read_text())))
    table = (run.root / "report" / "table.txt").read_text()
    for i, row in enumerate(rep["kurakin"]):
        for (case, name, k), v in _rates(row):
            assert isinstance(v["n"], int) and 0 <= v["k"] <= v["n"], (case, name, k)
            if v["n"] == 0:
                assert rate(v) is None and v["ci"] is None
                continue
            lo, hi = v["ci"]
            assert lo <= rate(v) <= hi and lo < hi and rate(v) == v["k"] / v["n"], (case, name, k)
            got = next(c for c in csv_rows if c["attack"] == row["attack_label"] and c["case"] == case)
            assert float(got[f"{name}_{k}_lo"]) == pytest.approx(lo) and int(got[f"{name}_{k}_n"]) == v["n"]
        acc = row["average"]["accuracy"]["digital_adv"]["top1"]
        assert f"[{100 * acc['ci'][0]:.1f}–{100 * acc['ci'][1]:.1f}]" in p.rows["kurakin"][str(i)]
        assert f"[{100 * acc['ci'][0]:.1f}-{100 * acc['ci'][1]:.1f}] {acc['k']}/{acc['n']}" in table


def test_paired_comparisons_and_class_names_are_reported(page):
    _, p, rep = page
    rows = rep["comparisons"]["rows"]
    assert rows and len(p.rows["comparisons"]) == len(rows)
    for i, c in enumerate(rows):
        assert c["kind"] in ("trip", "attacks") and 0 <= c["p"] <= 1 and c["significant"] == (c["p"] < 0.05)
        assert ("not significant" in p.rows["comparisons"][str(i)]) != c["significant"]
    names = {im["image"]: im["class"] for im in rep["images"]}
    assert names == {"chelsea": "tabby", "coffee": "espresso"}
    assert all(n in "".join(p.rows["images"].values()) for n in names.values())


def test_predicted_survival_is_scored_against_the_photos(tiny, page):
    html, p, rep = page
    run, cfg = tiny
    s = rep["survival"]
    assert s["draws"] == cfg.report.predict_draws == 8
    assert len(s["items"]) == len(rep["kurakin"]) * len(rep["images"])
    for it in s["items"]:
        assert 0 <= it["predicted"] <= 1 and (it["predicted"] * 8) == pytest.approx(round(it["predicted"] * 8))
    scored = [it for it in s["items"] if it["observed"] is not None and it["clean_right"]]
    assert s["n"] == len(scored) > 0
    assert s["brier"] == pytest.approx(sum((it["predicted"] - it["observed"]) ** 2 for it in scored) / len(scored))
    assert sum(b["n"] for b in s["reliability"]) == s["n"]
    assert 'alt="reliability of the predicted survival"' in html and len(p.rows["survival"]) == len(s["attacks"])
    got = list(csv.DictReader(io.StringIO((run.root / "report" / "survival.csv").read_text())))
    assert [float(g["predicted"]) for g in got] == [it["predicted"] for it in s["items"]]


def test_experiments_rates_carry_intervals(page):
    from physical.report.intervals import RATE, n_column

    _, p, rep = page
    checked = 0
    for name in ("transformations", "defences", "transfer", "generalisation"):
        for row in rep[name]["rows"]:
            for col, v in row.items():
                m = RATE.match(col)
                ncol = n_column(name, m["base"], m["k"]) if m else None
                if ncol is None:
                    assert not m or f"{col}_ci" not in row, (name, col)  # differences get no interval
                    continue
                ci = row[f"{col}_ci"]
                if v is None or not row[ncol]:
                    assert ci is None
                    continue
                assert ci[0] <= v <= ci[1] and ci[0] < ci[1], (name, col)
                checked += 1
    assert checked > 20
    assert all(not c.startswith(("n_", "destruction_n")) or not c.endswith("_ci")
               for r in rep["transformations"]["rows"] for c in r)  # counts are not rates
    t = rep["transformations"]["rows"][0]
    assert f"[{100 * t['destruction_top1_ci'][0]:.1f}–" in p.rows["transformations"]["0"] or t["destruction_top1"] is None


def test_targeted_rows_render_with_their_success_rates():
    from physical.measure.metrics import comparisons, kurakin_table
    from physical.report.html import render_html
    from physical.report.tables import text_table

    def p(top):
        return {"top": top, "prob": [0.9, 0.05, 0.02, 0.02, 0.01]}

    recs = [{"key": f"m/pgd-t409_eps16/i{i}", "model": "m", "attack": "pgd", "attack_label": "pgd-t409_eps16",
             "eps": 16.0, "image": f"i{i}", "label": 1, "label_known": True, "target": 409,
             "pred": {"digital_clean": p([1, 2, 3, 4, 5]), "digital_adv": p([409, 2, 3, 4, 5] if i < 3 else [2, 409, 3, 4, 5]),
                      "photo_clean": p([1, 2, 3, 4, 5]), "photo_adv": p([409, 1, 3, 4, 5] if i < 2 else [1, 2, 3, 4, 5])}}
            for i in range(4)]
    rows = kurakin_table(recs)
    rows[0]["reference"] = None
    rows[0]["target_name"] = "analog clock"
    report = {"run_id": "r", "name": "t", "kurakin": rows, "labels": {"unlabelled_images": [], "note": None},
              "comparisons": {"rows": comparisons(recs), "note": "paired"}, "images": [],
              "align": {"photos": 0, "photos_skipped": [], "cells_missing": [], "crops_excluded": []}}
    p_ = Tables()
    p_.feed(render_html(report, [], []))
    shown = p_.rows["targeted"]["0"]
    # top-1: 3 of 4 digital successes, 2 of 4 in the photos, 2 of the 3 digital successes kept
    assert "analog clock" in shown and "75.0" in shown and "3/4" in shown and "2/4" in shown and "2/3" in shown
    assert "targeted m pgd-t409_eps16 (target 409)" in text_table(rows)


def _walk(node, path="report"):
    """Every (path, dict) of a JSON document."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def test_every_rate_anywhere_in_report_json_carries_k_n_and_its_interval(page):
    """Issue 27.4: walk the whole document; a rate is a {acc|rate, k, n, ci} object or a table
    column X_top1/X_top5 (a share of images) with X_topK_ci beside it and its n in the row."""
    from physical.report.intervals import RATE

    _, _, rep = page
    objects = columns = 0
    for path, d in _walk(rep):
        for key in ("acc", "rate", "observed"):
            if key in d and isinstance(d[key], (int, float, type(None))) and (key != "observed" or "bin" in d):
                assert {"k", "n", "ci"} <= set(d), (path, sorted(d))
                assert (d[key] is None) == (d["n"] == 0) == (d["ci"] is None), path
                objects += 1
        for col, v in d.items():
            m = RATE.match(col)
            if col.endswith("_acc"):  # the paired comparisons' accuracies
                assert {f"{col}_ci", "n_images"} <= set(d), (path, col)
            if not m or m["base"].endswith(("_lost", "_recovered", "_n")) or m["base"].startswith("n_"):
                continue  # differences and counts are not rates
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert 0 <= v <= 1 and f"{col}_ci" in d, (path, col)
                ci = d[f"{col}_ci"]
                assert ci is not None and ci[0] <= v <= ci[1], (path, col, v, ci)
                assert any(k == "n" or k.startswith(("n_", "destruction_n")) for k in d), (path, col)
                columns += 1
    assert objects >= 20 and columns >= 20
