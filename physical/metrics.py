"""Kurakin et al.'s measures: top-1/top-5 accuracy per condition and the destruction rate.

Destruction rate (Kurakin et al. 2016, Eq. 1), C(X, y) = 1 when X is classified as y::

    d = sum_k C(X_k) (1 - C(X_adv_k)) C(T(X_adv_k))  /  sum_k C(X_k) (1 - C(X_adv_k))

over the images whose photographed adversarial image T(X_adv) exists. The *prefiltered case* keeps
only images whose clean version is top-1 correct with confidence >= c and whose adversarial version
is wrong in top-5 with top-1 confidence >= c (c = 0.8 in the paper).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Optional

CONDITIONS = ["digital_clean", "digital_adv", "photo_clean", "photo_adv"]


def correct(pred: Optional[dict], label: int, k: int) -> Optional[bool]:
    """Whether `label` is in the top-k of a prediction ({'top': [...], 'prob': [...]}); None if absent."""
    if pred is None:
        return None
    return label in pred["top"][:k]


def destruction(records: list[dict], k: int, transformed: str = "photo_adv") -> dict:
    """Destruction rate over records (each with 'label' and predictions per condition)."""
    num = den = 0
    for r in records:
        p = r["pred"]
        t = correct(p.get(transformed), r["label"], k)
        if t is None:
            continue
        if correct(p["digital_clean"], r["label"], k) and not correct(p["digital_adv"], r["label"], k):
            den += 1
            num += int(t)
    return {"rate": num / den if den else None, "n": den}


def prefiltered(records: list[dict], confidence: float) -> list[dict]:
    out = []
    for r in records:
        c, a = r["pred"]["digital_clean"], r["pred"]["digital_adv"]
        if (c["top"][0] == r["label"] and c["prob"][0] >= confidence
                and r["label"] not in a["top"][:5] and a["prob"][0] >= confidence):
            out.append(r)
    return out


def accuracy(records: list[dict], condition: str, k: int) -> dict:
    hits = [correct(r["pred"].get(condition), r["label"], k) for r in records]
    hits = [h for h in hits if h is not None]
    return {"acc": sum(hits) / len(hits) if hits else None, "n": len(hits)}


def summarize(records: list[dict], confidence: float = 0.8, transformed: str = "photo_adv") -> dict:
    """Accuracies and destruction rates of one group of records, both cases."""
    out = {}
    for case, recs in (("average", records), ("prefiltered", prefiltered(records, confidence))):
        out[case] = {
            "n": len(recs),
            "accuracy": {c: {f"top{k}": accuracy(recs, c, k) for k in (1, 5)} for c in CONDITIONS},
            "destruction": {f"top{k}": destruction(recs, k, transformed) for k in (1, 5)},
        }
    return out


def kurakin_table(records: list[dict], confidence: float = 0.8) -> list[dict]:
    """One row per model x attack x eps, in the order first seen."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in records:
        groups[(r["model"], r["attack_label"], r["attack"], r["eps"])].append(r)
    rows = []
    for (model, label, attack, eps), recs in groups.items():
        rows.append({"model": model, "attack": attack, "attack_label": label, "eps": eps, **summarize(recs, confidence)})
    return rows
