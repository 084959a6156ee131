"""The report's ``printed`` section: every printed artifact (a fitted patch or universal perturbation
and its control, every EOT attack) with its success digitally, predicted by draws of the channel,
and on the photos, side by side.

Success, the same in the three columns so that they compare: for a targeted attack, top-1 is the
target (each image's own for a least-likely target), over the images whose true class is not the
target; for an untargeted one, top-1 is not the true class, over the images the model classifies
right when clean (Kurakin's convention; the `universal` section's fooling rate compares with the
clean image's top-1 instead). Predicted: the mean over those images of the survival section's
predicted probability (the share of the channel's draws in which the attack works), its interval
the Wilson interval of that expected count over the n images; None without `report.predict_draws`.
Fitted artifacts count the unseen images only (those the fit never saw).
"""
from __future__ import annotations

from typing import Optional

from physical.measure.stats import proportion, wilson
from physical.measure.survival import works


def top1(rec: dict, cond: str) -> Optional[int]:
    """A record's top-1 class in a condition (digital_adv, photo_clean, ...), None where it has none."""
    p = rec["pred"].get(cond)
    return None if p is None else p["top"][0]


def count(values) -> dict:
    """Rate of the True among booleans, None entries left out, with k, n and its interval."""
    vals = [v for v in values if v is not None]
    return proportion(sum(vals), len(vals))


def _counts(rec: dict) -> bool:
    """Whether a record counts: a targeted one whose class is not its target, an untargeted one right when clean."""
    t = rec.get("target")
    return rec["label"] != t if t is not None else rec["pred"]["digital_clean"]["top"][0] == rec["label"]


def _mean(values: list[float]) -> Optional[dict]:
    if not values:
        return None
    total = float(sum(values))
    return {"rate": total / len(values), "k": round(total, 4), "n": len(values), "ci": wilson(total, len(values))}


def _printed(it: dict) -> bool:
    return bool(it.get("fitted")) or bool(it.get("eot"))


def printed_rows(by_label: dict, survival: Optional[dict]) -> list[dict]:
    """One row per model and printed artifact: digital / predicted / photo success with intervals."""
    predicted = {r["key"]: r["predicted"] for r in (survival or {}).get("items", [])}
    rows = []
    for (model, label), group in by_label.items():
        it0 = group[0][1]
        if not _printed(it0):
            continue
        recs = [r for r, it in group if _counts(r) and (not it.get("fitted") or it.get("split") == "unseen")]
        pred = [predicted[r["key"]] for r in recs if r["key"] in predicted]
        targets = {r.get("target") for r in recs}
        rows.append({"model": model, "attack_label": label, "attack": it0["attack"],
                     "role": "control" if it0.get("control") else "attack",
                     "images": "unseen" if it0.get("fitted") else "all",
                     "targeted": it0.get("target") is not None or any(t is not None for t in targets),
                     "success_digital": count([works(r, "digital_adv") for r in recs]),
                     "success_predicted": _mean(pred) if survival is not None else None,
                     "success_photo": count([works(r, "photo_adv") for r in recs])})
    return rows
