"""The report stage: Kurakin's table (report.json, CSV, a printed table) and a self-contained HTML page,
with the experiments' sections (transformations, defences, transfer, generalisation, digits) when the
experiments stage wrote them.

report.json fields are documented in README.md ("report.json").
"""
from __future__ import annotations


import numpy as np

from physical.attacks.labels import AttackLabel
from physical.stages.classify import load_records
from physical.measure.metrics import comparisons, kurakin_table
from physical.models import class_names
from physical.channel.report import channel_report
from physical import runfiles
from physical.rundir import RunDir, read_image, write_json, write_text
from physical.measure.survival import survival_section
from physical.report.beyond import SECTIONS as BEYOND, attach as attach_beyond
from physical.report.experiments import SECTIONS, attach
from physical.report.html import data_uri as _data_uri, render_html
from physical.report.reference import reference_for
from physical.report.tables import comparisons_text, csv_table, flat_csv, survival_text, text_table

def _top5(pred, label) -> list[dict]:
    names = class_names()
    if pred is None:
        return []
    return [{"name": names[c], "prob": p, "hit": c == label} for c, p in zip(pred["top"], pred["prob"], strict=False)]


def gallery_records(records: list[dict], n: int) -> list[dict]:
    """Up to `n` records, a sample of every (model, attack, eps) first and then more of each in turn, in
    the run's order of attacks: every attack appears, even when there are more attacks than `n`."""
    if n <= 0:  # report.gallery: 0, no gallery
        return []
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r.get("model"), r.get("attack_label"), r.get("eps")), []).append(r)
    n = max(n, len(groups))
    picked: dict[tuple, list[dict]] = {g: [] for g in groups}
    depth, count = 0, 0
    while count < n and any(depth < len(rs) for rs in groups.values()):
        for g, rs in groups.items():
            if depth < len(rs) and count < n:
                picked[g].append(rs[depth])
                count += 1
        depth += 1
    return [r for rs in picked.values() for r in rs]


def gallery(run: RunDir, records: list[dict], n: int) -> list[dict]:
    """Cells for the HTML gallery: clean, adversarial, amplified perturbation, photo crops, top-5 of each;
    a sample of every attack and eps (gallery_records)."""
    index = runfiles.load_index(run).by_key()
    out = []
    for r in gallery_records(records, n):
        it = index[r["key"]]
        clean = read_image(run.root / it["clean"])
        adv = read_image(run.root / it["adv"])
        diff = adv.astype(np.int16) - clean.astype(np.int16)
        amp = max(1, int(np.abs(diff).max()))
        pert = np.clip(127.5 + diff * (127.5 / amp), 0, 255).astype(np.uint8)
        entry = {"key": r["key"], "label": class_names()[r["label"]], "label_known": r["label_known"],
                 "attack": r.get("attack_label"), "eps": r.get("eps"),
                 "panels": [
                     {"title": "clean", "img": _data_uri(clean), "top5": _top5(r["pred"]["digital_clean"], r["label"])},
                     {"title": "adversarial", "img": _data_uri(adv),
                      "top5": _top5(r["pred"]["digital_adv"], r["label"])},
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


def counted(records: list[dict]) -> list[dict]:
    """The records Kurakin's table counts: those of images with a true label; all of them when no image
    has one (then every label is the clean top-1 prediction, and the page and the table say so)."""
    labelled = [r for r in records if r["label_known"]]
    return labelled or records


def kurakin_section(records: list[dict], cfg) -> list[dict]:
    rows = kurakin_table(counted(records), cfg.classify.prefilter_confidence)
    for r in rows:
        plain = AttackLabel.parse(r["attack_label"]).name == r["attack"]  # Kurakin's attack as published
        r["reference"] = reference_for(r["attack"], r["eps"]) if plain else None
        if r.get("target") is not None:
            t = r["target"]
            r["target_name"] = class_names()[t] if isinstance(t, int) else "each image's least-likely class"
    return rows


def comparisons_section(records: list[dict]) -> dict:
    return {"rows": comparisons(records, 1),
            "note": "McNemar's test on the same images, top-1 accuracy (exact binomial below 25 discordant images); "
                    "trip: digital adversarial against photo adversarial of one attack; attacks: photo adversarial of "
                    "two attacks of one model; significant: p < 0.05"}


def images_section(records: list[dict]) -> list[dict]:
    """The run's images with their true class, named."""
    names = class_names()
    seen: dict = {}
    for r in records:
        seen.setdefault(r["image"], {"image": r["image"], "label": r["label"], "class": names[r["label"]],
                                     "label_known": r["label_known"]})
    return list(seen.values())


def align_section(run: RunDir) -> dict:
    align = runfiles.load_crops(run) or runfiles.AlignedCrops()
    excluded = [{"photo": c["photo"], "sheet": c["sheet"], "slot": c["slot"], "item": c["item"], "role": c["role"],
                 "reason": c["reason"]} for c in align.crops if not c.get("accepted")]
    return {
        "photos": len(align.photos),
        "photos_skipped": [p for p in align.photos if p.get("status") != "ok"],
        "cells_missing": align.missing,
        "crops_excluded": excluded,
        # sheets of an outdated print of this run, refused (their cells showed other content: issue 27.2)
        "other_print": sum(": other print:" in x for p in align.photos for x in p.get("problems", [])),
    }


def label_sources(run: RunDir) -> dict[str, int]:
    """How the images' labels were obtained: source (labels.csv, class folders, ..., the clean top-1
    prediction) -> number of images (generate/index.json; an index of an older run: not known)."""
    images = runfiles.load_index(run).images if runfiles.path(run, runfiles.INDEX).is_file() else []
    out: dict[str, int] = {}
    for i in images:
        src = i.get("label_from") or ("the clean top-1 prediction" if not i.get("label_known") else "not recorded")
        out[src] = out.get(src, 0) + 1
    return out


def labels_section(records: list[dict], sources: dict[str, int] | None = None) -> dict:
    unlabelled = sorted({r["image"] for r in records if not r["label_known"]})
    labelled = sorted({r["image"] for r in records if r["label_known"]})
    if unlabelled and labelled:
        table = (f"Kurakin's table counts the {len(labelled)} image(s) with a true label; the "
                 f"{len(unlabelled)} without one are left out of it")
    elif unlabelled:
        table = (f"no image has a true label: Kurakin's table counts all {len(unlabelled)}, each labelled with the "
                 f"model's own clean top-1 prediction (digital clean accuracy 100 % by construction)")
    else:
        table = f"Kurakin's table counts all {len(labelled)} image(s), each with a true label"
    n = len(unlabelled) + len(labelled)
    head = f"{n} image(s), {len(unlabelled)} unlabelled" + (
        "; labels from " + ", ".join(f"{k} ({v})" for k, v in sources.items()) if sources else "")
    return {
        "sources": sources or {},
        "labelled_images": len(labelled),
        "unlabelled_images": unlabelled,
        "table": f"{head}. {table}",
        "note": ("images without a known true class use the clean top-1 prediction as their label (their digital "
                 "clean accuracy is 100 % by construction)" + ("; Kurakin's table leaves them out" if labelled else "")
                 ) if unlabelled else None,
    }


SURVIVAL_COLUMNS = ["key", "model", "attack_label", "image", "target", "predicted", "observed",
                    "digital_fooled", "clean_right"]


def report_stage(run: RunDir, cfg, device=None) -> dict:
    records = load_records(run)
    rows = kurakin_section(records, cfg)
    report = {
        "run_id": run.manifest().get("run_id"),
        "name": cfg.run.name,
        "kurakin": rows,
        "comparisons": comparisons_section(records),
        "images": images_section(records),
        "labels": labels_section(records, label_sources(run)),
        "align": align_section(run),
        "channel": channel_report(cfg),  # the print-and-camera channel: preset, calibration, parameters
    }
    survival = survival_section(run, cfg, device, records, cfg.report.predict_draws)
    if survival:
        report["survival"] = survival
    csvs, sections = attach(run, report, records)  # the experiments' sections, tables and plots
    more_csvs, more = attach_beyond(run, report, records)  # universal, patch, black box, tv
    csvs.update(more_csvs)
    sections = more + sections
    out = run.stage_dir("report")
    write_json(out / "report.json", report)
    write_text(out / "kurakin.csv", csv_table(rows))
    write_text(out / "comparisons.csv", flat_csv(report["comparisons"]["rows"], [
        "kind", "model", "a", "a_condition", "b", "b_condition", "k", "n", "a_acc", "b_acc", "a_only", "b_only", "p",
        "test", "significant"]))
    if survival:
        write_text(out / "survival.csv", flat_csv(survival["items"], SURVIVAL_COLUMNS))
    else:
        (out / "survival.csv").unlink(missing_ok=True)
    for name in SECTIONS + BEYOND:  # a table of an experiment no longer run must not linger
        if f"{name}.csv" not in csvs:
            (out / f"{name}.csv").unlink(missing_ok=True)
    for name, text in csvs.items():
        write_text(out / name, text)
    table = "\n\n".join([report["labels"]["table"] + "\n" + text_table(rows),
                         comparisons_text(report["comparisons"]["rows"])]
                         + ([survival_text(survival)] if survival else []))
    write_text(out / "table.txt", table + "\n")
    if cfg.report.html:
        write_text(out / "report.html", render_html(report, gallery(run, records, cfg.report.gallery), sections))
    return {"table": table, "report": str(out / "report.json"),
            **({"html": str(out / "report.html")} if cfg.report.html else {})}
