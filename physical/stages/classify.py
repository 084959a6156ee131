"""The classify stage: top-5 predictions for every condition of every item.

Conditions: digital clean, digital adversarial (the 8-bit PNGs that were printed), photo clean and
photo adversarial (the best accepted crop of each cell; absent when the cell was not found or its
crop was excluded). Each item is classified by the model it was made for; all images of one model
go through it in batches. Writes ``classify/predictions.json``.
"""
from __future__ import annotations

from collections import defaultdict

import torch

from physical.runs import distributed
from physical.models.classify import classify_images
from physical.models import inference_batch, load_model
from physical import runfiles
from physical.rundir import RunDir, read_image
from physical.runtime import Eta


def best_crops(run: RunDir) -> dict[tuple[str, str], str]:
    """(item key, role) -> path of the best accepted crop."""
    crops = runfiles.load_crops(run)
    if crops is None:
        return {}
    out = {}
    for c in crops.crops:
        if c.get("best") and c.get("accepted"):
            out[(c["item"], c["role"])] = c["path"]
    return out


def classify_paths(run: RunDir, model, paths: list[str], batch_size: int, eta=None) -> dict[str, dict]:
    """path -> prediction for the run's images, read a batch at a time (memory does not grow with the
    run); `eta` (a runtime.Eta) is told of every batch done."""
    bs = inference_batch(model, model.input_size, model.device, batch_size)
    preds: dict = {}
    for i in range(0, len(paths), bs):
        part = paths[i : i + bs]
        preds.update(zip(part, classify_images(model, [read_image(run.root / p) for p in part], bs), strict=False))
        if eta is not None:
            eta.done(len(part))
    return preds


def classify_stage(run: RunDir, cfg, device: torch.device) -> dict:
    index = runfiles.load_index(run)
    crops = best_crops(run)
    by_model = defaultdict(list)
    for it in index.items:
        by_model[it["model"]].append(it)
    records = []
    eta = Eta("classify", _count_images(by_model, crops) / distributed.current().world, unit="image")
    for model_name, items in by_model.items():
        model = load_model(model_name, device, cfg.run.precision)
        jobs = []  # (record, condition, path)
        recs = []
        for it in items:
            rec = {k: it[k] for k in ("key", "model", "attack", "attack_label", "eps", "image", "label", "label_known")}
            rec["target"] = it.get("target")  # a targeted attack's class (None: untargeted)
            rec["pred"] = {"photo_clean": None, "photo_adv": None}
            rec["crops"] = {}
            jobs.append((rec, "digital_clean", it["clean"]))
            jobs.append((rec, "digital_adv", it["adv"]))
            for role in ("clean", "adv"):
                crop = crops.get((it["key"], role))
                if crop:
                    rec["crops"][role] = crop
                    jobs.append((rec, f"photo_{role}", crop))
            recs.append(rec)
        # the same clean image appears once per attack: classify each distinct file once; under
        # torchrun every rank classifies its share and all predictions come together on rank 0
        paths = sorted({p for _, _, p in jobs})
        mine = [paths[i] for i in distributed.shard(len(paths))]
        preds = distributed.merge(classify_paths(run, model, mine, cfg.run.batch_size, eta), "classify")
        for rec, cond, p in jobs:
            rec["pred"][cond] = preds[p]
        records.extend(recs)
    if not distributed.current().main:
        return {}
    runfiles.save_predictions(run, runfiles.Predictions(records))
    n_photo = sum(r["pred"]["photo_adv"] is not None for r in records)
    return {"records": len(records), "with_photo": n_photo}


def _count_images(by_model: dict, crops: dict) -> int:
    """Distinct images the stage classifies (for its time estimate)."""
    n = 0
    for items in by_model.values():
        paths = {it[r] for it in items for r in ("clean", "adv")}
        paths.update(crops[(it["key"], r)] for it in items for r in ("clean", "adv") if (it["key"], r) in crops)
        n += len(paths)
    return n


def load_records(run: RunDir) -> list[dict]:
    return runfiles.load_predictions(run).records
