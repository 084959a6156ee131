"""Kurakin et al.'s measures: top-1/top-5 accuracy per condition and the destruction rate; next to
them the physical success rate, targeted success, and paired comparisons. Every rate carries its n
and a 95 % Wilson interval (:mod:`physical.measure.stats`).

Destruction rate (Kurakin et al. 2016, Eq. 1), C(X, y) = 1 when X is classified as y::

    d = sum_k C(X_k) (1 - C(X_adv_k)) C(T(X_adv_k))  /  sum_k C(X_k) (1 - C(X_adv_k))

over the images whose photographed adversarial image T(X_adv) exists. The *prefiltered case* keeps
only images whose clean version is top-1 correct with confidence >= c and whose adversarial version
is wrong in top-5 with top-1 confidence >= c (c = 0.8 in the paper).

Physical success rate: of the images whose *photo* clean is classified correctly, the fraction whose
photo adversarial is not. It does not start from the digital image, so an attack built for the photo
(EOT) is judged on what the camera sees, even where its digital image does not fool the model.

Targeted attacks (records with a ``target``): success = the target class in the top-k, digitally and
from photos, over the images whose true class is not the target; *kept* = of the digital successes
with a photo, the fraction still successful in the photo.
"""
from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Optional

from physical.measure.stats import mcnemar, proportion, wilson

CONDITIONS = ["digital_clean", "digital_adv", "photo_clean", "photo_adv"]


def correct(pred: Optional[dict], label: int, k: int) -> Optional[bool]:
    """Whether `label` is in the top-k of a prediction ({'top': [...], 'prob': [...]}); None if absent."""
    if pred is None:
        return None
    return label in pred["top"][:k]


def destruction(records: list[dict], k: int, transformed: str = "photo_adv") -> dict:
    """Destruction rate over records (each with 'label' and predictions per condition):
    {"rate", "k" (destroyed), "n", "ci"}."""
    num = den = 0
    for r in records:
        p = r["pred"]
        t = correct(p.get(transformed), r["label"], k)
        if t is None:
            continue
        if correct(p["digital_clean"], r["label"], k) and not correct(p["digital_adv"], r["label"], k):
            den += 1
            num += int(t)
    return proportion(num, den)


def physical_success(records: list[dict], k: int) -> dict:
    """Photo adversarial wrong (top-k) among the images whose photo clean is right and that have both photos."""
    num = den = 0
    for r in records:
        c = correct(r["pred"].get("photo_clean"), r["label"], k)
        a = correct(r["pred"].get("photo_adv"), r["label"], k)
        if c and a is not None:
            den += 1
            num += int(not a)
    return proportion(num, den)


def targeted(records: list[dict], k: int) -> Optional[dict]:
    """Targeted success digital and from photos, and the digital successes kept by the photo; None
    when the records have no target."""
    recs = [r for r in records if r.get("target") is not None and r["target"] != r["label"]]
    if not recs:
        return None
    dig = [bool(correct(r["pred"]["digital_adv"], r["target"], k)) for r in recs]  # every record has it
    pho = [correct(r["pred"].get("photo_adv"), r["target"], k) for r in recs]
    seen = [p for p in pho if p is not None]
    kept = [p for d, p in zip(dig, pho, strict=False) if d and p is not None]
    return {"digital": proportion(sum(dig), len(dig)), "photo": proportion(sum(seen), len(seen)),
            "kept": proportion(sum(kept), len(kept))}


def prefiltered(records: list[dict], confidence: float) -> list[dict]:
    out = []
    for r in records:
        c, a = r["pred"]["digital_clean"], r["pred"]["digital_adv"]
        if (c["top"][0] == r["label"] and c["prob"][0] >= confidence
                and r["label"] not in a["top"][:5] and a["prob"][0] >= confidence):
            out.append(r)
    return out


def accuracy(records: list[dict], condition: str, k: int) -> dict:
    """{"acc", "k" (right), "n" (images with a prediction in that condition), "ci"}."""
    found = [correct(r["pred"].get(condition), r["label"], k) for r in records]
    hits = [h for h in found if h is not None]
    return proportion(sum(hits), len(hits), "acc")


def summarize(records: list[dict], confidence: float = 0.8, transformed: str = "photo_adv") -> dict:
    """Accuracies, destruction rates and physical success rates of one group of records, both cases."""
    out = {}
    for case, recs in (("average", records), ("prefiltered", prefiltered(records, confidence))):
        out[case] = {
            "n": len(recs),
            "accuracy": {c: {f"top{k}": accuracy(recs, c, k) for k in (1, 5)} for c in CONDITIONS},
            "destruction": {f"top{k}": destruction(recs, k, transformed) for k in (1, 5)},
            "physical_success": {f"top{k}": physical_success(recs, k) for k in (1, 5)},
        }
        tgt = {f"top{k}": targeted(recs, k) for k in (1, 5)}
        if tgt["top1"] is not None:
            out[case]["targeted"] = tgt
    return out


def _groups(records: list[dict]) -> dict[tuple, list]:
    groups: dict[tuple, list] = defaultdict(list)
    for r in records:
        groups[(r["model"], r["attack_label"], r["attack"], r["eps"])].append(r)
    return groups


def kurakin_table(records: list[dict], confidence: float = 0.8) -> list[dict]:
    """One row per model x attack x eps, in the order first seen."""
    rows = []
    for (model, label, attack, eps), recs in _groups(records).items():
        targets = {r.get("target") for r in recs} - {None}
        row = {"model": model, "attack": attack, "attack_label": label, "eps": eps}
        if targets:  # one class, or each image's own (a least-likely target, ILL)
            row["target"] = targets.pop() if len(targets) == 1 else "per image"
        rows.append({**row, **summarize(recs, confidence)})
    return rows


def _paired(ra: list[dict], rb: list[dict], ca: str, cb: str, k: int) -> Optional[dict]:
    """McNemar between condition ca of records ra and cb of rb, on the images both have."""
    a = {r["image"]: correct(r["pred"].get(ca), r["label"], k) for r in ra}
    b = {r["image"]: correct(r["pred"].get(cb), r["label"], k) for r in rb}
    images = [i for i in a if i in b and a[i] is not None and b[i] is not None]
    if not images:
        return None
    xa, xb = [bool(a[i]) for i in images], [bool(b[i]) for i in images]  # None filtered out above
    n, ka, kb = len(xa), sum(xa), sum(xb)  # each accuracy with its k, n and 95 % interval (issue 27.4)
    return {**mcnemar(xa, xb), "a_acc": ka / n, "b_acc": kb / n, "n_images": n, "a_right": ka, "b_right": kb,
            "a_acc_ci": wilson(ka, n), "b_acc_ci": wilson(kb, n)}


def comparisons(records: list[dict], k: int = 1) -> list[dict]:
    """Paired tests on the same images (McNemar, top-k accuracy):

    - ``trip``: each attack's digital adversarial against its photo adversarial (did the trip through
      printer and camera change the accuracy?);
    - ``attacks``: every two attacks of one model, photo adversarial against photo adversarial (is one
      attack better than the other on what the camera sees?).
    """
    groups = _groups(records)
    rows = []
    for (model, label, _, _), recs in groups.items():
        t = _paired(recs, recs, "digital_adv", "photo_adv", k)
        if t:
            rows.append({"kind": "trip", "model": model, "a": label, "a_condition": "digital_adv", "b": label,
                         "b_condition": "photo_adv", "k": k, **t})
    by_model = defaultdict(list)
    for (model, label, _, _), recs in groups.items():
        by_model[model].append((label, recs))
    for model, items in by_model.items():
        for (la, ra), (lb, rb) in combinations(items, 2):
            t = _paired(ra, rb, "photo_adv", "photo_adv", k)
            if t:
                rows.append({"kind": "attacks", "model": model, "a": la, "a_condition": "photo_adv", "b": lb,
                             "b_condition": "photo_adv", "k": k, **t})
    return rows
