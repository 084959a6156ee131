"""The classify stage: top-5 predictions for every condition of every item.

Conditions: digital clean, digital adversarial (the 8-bit PNGs that were printed), photo clean and
photo adversarial (the best accepted crop of each cell; absent when the cell was not found or its
crop was excluded). Each item is classified by the model it was made for; all images of one model
go through it in batches. Writes ``classify/predictions.json``.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from .generate import load_index
from .models import load_model, predict, to_tensor
from .rundir import RunDir, read_image, read_json, write_json


def best_crops(run: RunDir) -> dict[tuple[str, str], str]:
    """(item key, role) -> path of the best accepted crop."""
    path = run.root / "align" / "crops.json"
    if not path.is_file():
        return {}
    out = {}
    for c in read_json(path)["crops"]:
        if c.get("best") and c.get("accepted"):
            out[(c["item"], c["role"])] = c["path"]
    return out


def classify_images(model, images: list[np.ndarray], batch_size: int) -> list[dict]:
    """Predictions ({'top': 5 classes, 'prob': 5 probabilities}) for uint8 HWC images of any size."""
    if not images:
        return []
    size = model.input_size
    same = all(im.shape[:2] == (size, size) for im in images)
    if not same:
        import cv2

        images = [im if im.shape[:2] == (size, size) else cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
                  for im in images]
    top, prob = predict(model, to_tensor(images, model.device), batch_size)
    return [{"top": t.tolist(), "prob": [round(float(v), 5) for v in p]} for t, p in zip(top, prob)]


def classify_stage(run: RunDir, cfg, device: torch.device) -> dict:
    index = load_index(run)
    crops = best_crops(run)
    by_model = defaultdict(list)
    for it in index["items"]:
        by_model[it["model"]].append(it)
    records = []
    for model_name, items in by_model.items():
        model = load_model(model_name, device)
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
        # the same clean image appears once per attack: classify each distinct file once
        paths = sorted({p for _, _, p in jobs})
        preds = dict(zip(paths, classify_images(model, [read_image(run.root / p) for p in paths], cfg.run.batch_size)))
        for rec, cond, p in jobs:
            rec["pred"][cond] = preds[p]
        records.extend(recs)
    write_json(run.root / "classify" / "predictions.json", {"records": records})
    n_photo = sum(r["pred"]["photo_adv"] is not None for r in records)
    return {"records": len(records), "with_photo": n_photo}


def load_records(run: RunDir) -> list[dict]:
    return read_json(run.root / "classify" / "predictions.json")["records"]
