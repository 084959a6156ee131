"""The report's text and CSV tables: Kurakin's measures with every rate's n and 95 % interval, the
physical success rate, targeted success, the paired tests and the predicted survival."""
from __future__ import annotations

import csv
import io
from typing import Optional

from physical.measure.metrics import CONDITIONS

MEASURES = ("destruction", "physical_success")


def rate(v: Optional[dict]) -> Optional[float]:
    """The fraction of a rate dict ({"acc"} or {"rate"} ...), None when absent."""
    if not v:
        return None
    for key in ("acc", "rate", "observed"):
        if key in v:
            return v[key]
    return None


def fmt(v: Optional[dict], counts: bool = True) -> str:
    """'62.5 [30.6-86.3] 5/8': percent, Wilson 95 % interval, k of n; '-' when n = 0."""
    r = rate(v)
    if not v or r is None:
        return f"- (n {v['n'] if v else 0})" if counts else "-"
    lo, hi = v["ci"]
    s = f"{100 * r:.1f} [{100 * lo:.1f}-{100 * hi:.1f}]"
    return f"{s} {v['k']}/{v['n']}" if counts else s


def _acc(row, case, cond, k):
    return row[case]["accuracy"][cond][f"top{k}"]


def text_table(rows: list[dict]) -> str:
    """Kurakin's first table as text, one line per top-1 and top-5: accuracy per condition,
    destruction rate (average and prefiltered case) and physical success rate."""
    cols = [c.replace("_", " ") for c in CONDITIONS] + ["destruction avg", "destruction pref", "physical success"]
    w = 24
    head = f"{'model':<20} {'attack':<18} {'':<4} " + " ".join(f"{c:<{w}}" for c in cols)
    lines = [head, "-" * len(head)]
    for r in rows:
        for k in (1, 5):
            cells = [fmt(_acc(r, "average", c, k)) for c in CONDITIONS]
            cells += [fmt(r["average"]["destruction"][f"top{k}"]), fmt(r["prefiltered"]["destruction"][f"top{k}"]),
                      fmt(r["average"]["physical_success"][f"top{k}"])]
            lines.append(f"{r['model'] if k == 1 else '':<20} {r['attack_label'] if k == 1 else '':<18} "
                         f"top{k} " + " ".join(f"{c:<{w}}" for c in cells))
    lines.append("rates in %: value [95 % Wilson interval] k/n; destruction: of the n images fooled digitally (clean "
                 "right, adversarial wrong) with a photo, k are right again in the photo; physical success: of the n "
                 "images whose photo clean is right, k are wrong in the photo adversarial")
    tgt = [r for r in rows if r["average"].get("targeted")]
    for r in tgt:
        t = r["average"]["targeted"]
        lines.append(f"targeted {r['model']} {r['attack_label']} (target {r.get('target')}): " + "; ".join(
            f"top-{k} digital {fmt(t[f'top{k}']['digital'])}, photo {fmt(t[f'top{k}']['photo'])}, "
            f"kept by the photo {fmt(t[f'top{k}']['kept'])}" for k in (1, 5)))
    return "\n".join(lines)


def comparisons_text(rows: list[dict]) -> str:
    """The paired tests that found a difference, and how many did not."""
    sig = [r for r in rows if r["significant"]]
    lines = [f"paired tests (McNemar, top-1 accuracy on the same images): {len(sig)} of {len(rows)} significant "
             "(p < 0.05)"]
    for r in sig:
        what = (f"{r['a']}: digital adv {100 * r['a_acc']:.1f} -> photo adv {100 * r['b_acc']:.1f}"
                if r["kind"] == "trip"
                else f"photo adv {r['a']} {100 * r['a_acc']:.1f} vs {r['b']} {100 * r['b_acc']:.1f}")
        lines.append(f"  {r['model']} {what} (n {r['n']}, discordant {r['a_only']}/{r['b_only']}, p {r['p']:.3g})")
    return "\n".join(lines)


def survival_text(s: dict) -> str:
    mapped = f", through the forecast map fitted on {s['forecast_map']}" if s.get("forecast_map") else ""
    lines = [f"predicted survival ({s['draws']} draws of {s['channel']}{mapped}) against the photos: "
             f"Brier {_num(s['brier'])} (a constant forecast of the observed rate: {_num(s['brier_reference'])}), "
             f"expected calibration error {_num(s.get('ece'))}"]
    for a in s["attacks"]:
        lines.append(f"  {a['model']} {a['attack_label']}: predicted {_pc(a['predicted_mean'])}, "
                     f"observed {fmt(a['observed_rate'])}, Brier {_num(a['brier'])}")
    return "\n".join(lines)


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pc(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _cells(v: Optional[dict]) -> list:
    if not v:
        return [None, None, None, 0]
    ci = v.get("ci") or [None, None]
    return [rate(v), ci[0], ci[1], v["n"]]


def csv_table(rows: list[dict]) -> str:
    """kurakin.csv: one line per row and case; every rate with _lo, _hi (95 % interval) and _n."""
    buf = io.StringIO()
    w = csv.writer(buf)
    names = [f"{c}_top{k}" for c in CONDITIONS for k in (1, 5)] + [f"{m}_top{k}" for m in MEASURES for k in (1, 5)]
    cols = ["model", "attack", "eps", "case", "n"]
    for n in names:
        cols += [n, f"{n}_lo", f"{n}_hi", f"{n}_n"]
    w.writerow(cols)
    for r in rows:
        for case in ("average", "prefiltered"):
            vals = [r["model"], r["attack_label"], r["eps"], case, r[case]["n"]]
            for c in CONDITIONS:
                for k in (1, 5):
                    vals += _cells(_acc(r, case, c, k))
            for m in MEASURES:
                for k in (1, 5):
                    vals += _cells(r[case][m][f"top{k}"])
            w.writerow(["" if v is None else v for v in vals])
    return buf.getvalue()


def flat_csv(rows: list[dict], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
    return buf.getvalue()
