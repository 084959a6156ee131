"""Plots for the HTML report (matplotlib, Agg backend), returned as PNG data URIs so the page stays
self-contained. Each function takes the rows of a report.json table and returns None when there is
nothing to plot."""
from __future__ import annotations

import base64
import io
from collections import defaultdict
from typing import Optional

import numpy as np

from physical.attacks.labels import AttackLabel
from physical.report.tables import rate

_STYLE = {"figure.dpi": 100, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 8}


def _plt():
    import matplotlib  # deferred: matplotlib (pyplot ~1.7 s) only when a plot is drawn; the backend is set first

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # deferred: after the backend is chosen

    return plt


def to_data_uri(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _pc(v):
    return float("nan") if v is None else 100.0 * v


def _err(vals: list[Optional[dict]]):
    """Values and asymmetric error bars (percent) of rate dicts with a 95 % interval."""
    y = [_pc(rate(v)) for v in vals]
    lo = [0.0 if not v or not v.get("ci") else y_ - 100 * v["ci"][0] for v, y_ in zip(vals, y, strict=False)]
    hi = [0.0 if not v or not v.get("ci") else 100 * v["ci"][1] - y_ for v, y_ in zip(vals, y, strict=False)]
    return y, [lo, hi]


def _err_cols(rows: list[dict], col: str):
    """Values of column `col` and error bars from its `col_ci` interval (percent; none where absent)."""
    y = [_pc(r.get(col)) for r in rows]
    cis = [r.get(f"{col}_ci") for r in rows]
    lo = [0.0 if not ci else y_ - 100 * ci[0] for ci, y_ in zip(cis, y, strict=False)]
    hi = [0.0 if not ci else 100 * ci[1] - y_ for ci, y_ in zip(cis, y, strict=False)]
    return y, [lo, hi]


def eps_plots(kurakin_rows: list[dict]) -> Optional[str]:
    """Accuracy (digital / photo adversarial, top-1) and destruction rate against eps, per attack,
    with the 95 % intervals as error bars (the points of one attack are nudged apart in eps so the
    bars do not hide each other)."""
    if not kurakin_rows:
        return None
    plt = _plt()
    series = defaultdict(list)
    for r in kurakin_rows:
        name = AttackLabel.parse(r["attack_label"]).name
        if len({x["model"] for x in kurakin_rows}) > 1:
            name = f"{r['model']}/{name}"
        series[name].append(r)
    ticks = sorted({r["eps"] for r in kurakin_rows})
    span = (ticks[-1] - ticks[0]) or max(ticks[0], 1.0)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
        for i, (name, rows) in enumerate(series.items()):
            rows = sorted(rows, key=lambda r: r["eps"])
            eps = [r["eps"] + 0.02 * span * (i - (len(series) - 1) / 2) for r in rows]
            acc = lambda c, k=1, rows=rows: _err([r["average"]["accuracy"][c][f"top{k}"] for r in rows])  # noqa: E731
            y, e = acc("digital_adv")
            line = axes[0].errorbar(eps, y, yerr=e, fmt="o-", capsize=2, label=name)[0]
            y, e = acc("photo_adv")
            axes[1].errorbar(eps, y, yerr=e, fmt="o-", capsize=2, color=line.get_color(), label=name)
            for k, fmt_, alpha in ((1, "o-", 1.0), (5, "s--", 0.6)):
                y, e = _err([r["average"]["destruction"][f"top{k}"] for r in rows])
                axes[2].errorbar(eps, y, yerr=e, fmt=fmt_, capsize=2, color=line.get_color(), alpha=alpha,
                                 label=f"{name} top-{k}")
        clean = [_pc(r["average"]["accuracy"]["digital_clean"]["top1"]["acc"]) for r in kurakin_rows]
        if clean:
            axes[0].axhline(sum(clean) / len(clean), color="grey", ls=":", label="clean")
        for ax, title in zip(axes, ["digital adversarial accuracy, top-1 (%)", "photo adversarial accuracy, top-1 (%)",
                                    "destruction rate (%)"], strict=False):
            ax.set_title(title)
            ax.set_xlabel("eps (0..255); bars: 95 % interval")
            ax.set_xticks(ticks)
            ax.set_xlim(ticks[0] - 0.25 * span, ticks[-1] + 0.25 * span)
            ax.set_ylim(-3, 103)
            ax.legend(loc="best")
        return to_data_uri(fig)


def reliability_plot(survival: dict) -> Optional[str]:
    """Predicted survival against observed survival (bins of the prediction, 95 % intervals), and
    how many images fall in each bin."""
    bins = survival.get("reliability") or []
    if not bins:
        return None
    plt = _plt()
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.3))
        ax = axes[0]
        ax.plot([0, 100], [0, 100], color="grey", ls=":", label="perfect")
        y, e = _err(bins)
        ax.errorbar([100 * b["predicted"] for b in bins], y, yerr=e, fmt="o-", capsize=2,
                    label=f"this run (Brier {survival['brier']:.3f})")
        ax.set_xlabel("predicted survival (%)")
        ax.set_ylabel("observed survival in the photos (%)")
        ax.set_xlim(-3, 103)
        ax.set_ylim(-3, 103)
        ax.legend(loc="upper left")
        axes[1].bar([100 * (b["bin"][0] + b["bin"][1]) / 2 for b in bins], [b["n"] for b in bins],
                    width=100 * (bins[0]["bin"][1] - bins[0]["bin"][0]) * 0.9)
        axes[1].set_xlabel("predicted survival (%)")
        axes[1].set_ylabel("images")
        axes[1].set_xlim(-3, 103)
        fig.tight_layout()
        return to_data_uri(fig)


def transformation_plots(rows: list[dict], untransformed: Optional[list[dict]] = None,
                         identity: Optional[dict] = None) -> Optional[str]:
    """Per transformation: destruction rate (top-1, top-5) and accuracy against strength, per attack.
    Curves start at the identity strength (hollow marker) with the untransformed figures when given
    (destruction rate 0 there by definition)."""
    if not rows:
        return None
    base = {(u["model"], u["attack_label"]): u for u in untransformed or []}
    identity = identity or {}
    rows = list(rows)
    for name in dict.fromkeys(r["transformation"] for r in rows):
        ident = (identity.get(name) or {}).get("identity")
        if ident is None:
            continue
        have = {(r["model"], r["attack_label"]) for r in rows if r["transformation"] == name and r["strength"] == ident}
        for key, u in base.items():
            if key not in have:
                rows.append({"model": key[0], "attack_label": key[1], "transformation": name, "strength": ident,
                             "destruction_top1": 0.0, "destruction_top5": 0.0, "clean_top1": u["clean_top1"],
                             "adv_top1": u["adv_top1"]})
    plt = _plt()
    names = list(dict.fromkeys(r["transformation"] for r in rows))
    multi = len({r["model"] for r in rows}) > 1
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(3, len(names), figsize=(3.2 * len(names), 8.2), squeeze=False)
        for c, name in enumerate(names):
            sub = [r for r in rows if r["transformation"] == name]
            by = defaultdict(list)
            for r in sub:
                by[(r["model"], r["attack_label"])].append(r)
            clean_done = set()
            for (model, label), rs in by.items():
                rs = sorted(rs, key=lambda r: r["strength"])
                s = [r["strength"] for r in rs]
                lab = f"{model}/{label}" if multi else label
                y, e = _err_cols(rs, "destruction_top1")
                line = axes[0, c].errorbar(s, y, yerr=e, fmt="o-", capsize=2, label=lab)[0]
                y, e = _err_cols(rs, "destruction_top5")
                axes[1, c].errorbar(s, y, yerr=e, fmt="o-", capsize=2, color=line.get_color(), label=lab)
                y, e = _err_cols(rs, "adv_top1")
                axes[2, c].errorbar(s, y, yerr=e, fmt="o-", capsize=2, color=line.get_color(), label=f"adv {lab}")
                if model not in clean_done:
                    clean_done.add(model)
                    axes[2, c].plot(s, [_pc(r["clean_top1"]) for r in rs], "k^--",
                                    label=f"clean {model}" if multi else "clean")
            axes[0, c].set_title(name)
            axes[2, c].set_xlabel(f"strength ({name})")
            if name == "jpeg":
                for r_ in range(3):
                    axes[r_, c].invert_xaxis()
            for r_ in range(3):
                axes[r_, c].set_ylim(-3, 103)
        axes[0, 0].set_ylabel("destruction rate top-1 (%), 95 % bars")
        axes[1, 0].set_ylabel("destruction rate top-5 (%)")
        axes[2, 0].set_ylabel("accuracy top-1 (%)")
        fig.tight_layout()
        handles, labels = axes[2, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.98))
        return to_data_uri(fig)


def defence_plot(rows: list[dict]) -> Optional[str]:
    """Grouped bars per defence: clean, adversarial and adaptive adversarial accuracy (top-1), averaged over attacks."""
    if not rows:
        return None
    plt = _plt()
    defences = list(dict.fromkeys(r["defence"] for r in rows))
    cols = [("clean_top1", "clean, no defence"), ("defended_clean_top1", "clean, defended"),
            ("adv_top1", "adversarial, no defence"), ("defended_adv_top1", "adversarial, defended"),
            ("adaptive_adv_top1", "adaptive attack, defended")]

    def mean(d, key):
        v = [r[key] for r in rows if r["defence"] == d and r[key] is not None]
        return 100 * sum(v) / len(v) if v else float("nan")

    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(defences) + 2), 3.4))
        w = 0.8 / len(cols)
        x = np.arange(len(defences))
        for i, (key, label) in enumerate(cols):
            ax.bar(x + (i - (len(cols) - 1) / 2) * w, [mean(d, key) for d in defences], w, label=label)
        ax.set_xticks(x, defences, rotation=15)
        ax.set_ylabel("top-1 accuracy (%), mean over attacks")
        ax.set_ylim(0, 103)
        ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
        return to_data_uri(fig)


def generalisation_plot(rows: list[dict]) -> Optional[str]:
    if not rows:
        return None
    plt = _plt()
    labels = [f"{r['model']}/{r['attack_label']}" if len({x['model'] for x in rows}) > 1 else r["attack_label"]
              for r in rows]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(rows) + 2), 3.2))
        x = np.arange(len(rows))
        for i, (key, lab) in enumerate([("own_fool_top1", "own perturbation"), ("cross_fool_top1", "another image's"),
                                        ("random_fool_top1", "random sign, same eps")]):
            y, e = _err_cols(rows, key)
            ax.bar(x + (i - 1) * 0.27, y, 0.27, yerr=e, capsize=2, label=lab)
        ax.set_xticks(x, labels, rotation=20)
        ax.set_ylabel("fool rate, top-1 (%); bars: 95 % interval")
        ax.set_ylim(0, 103)
        ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
        return to_data_uri(fig)


def digits_plots(res: dict) -> Optional[str]:
    """FGSM error rate against eps per model, and clean accuracy against eps50."""
    if not res.get("rows"):
        return None
    plt = _plt()
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        grid = res["eps_grid"]
        for name, c in res["curves"].items():
            line = axes[0].plot(grid, [_pc(v) for v in c["error"]], "-", label=name)[0]
            axes[1].plot(grid, [_pc(v) for v in c["mistake_confidence"]], "-", color=line.get_color(), label=name)
        axes[0].axhline(50, color="grey", ls=":")
        axes[0].set_title("FGSM error rate (%)")
        axes[1].set_title("mean confidence of the mistakes (%)")
        for ax in axes[:2]:
            ax.set_xlabel("eps (pixels in [0,1])")
            ax.set_ylim(-3, 103)
        axes[0].legend(loc="lower right")
        for r in res["rows"]:
            e = r["eps50"] if r["eps50"] is not None else 1.0
            axes[2].scatter(e, 100 * r["clean_accuracy"])
            axes[2].annotate(r["model"], (e, 100 * r["clean_accuracy"]), fontsize=7, xytext=(3, 3),
                             textcoords="offset points")
        axes[2].set_xlabel("eps50: eps at which FGSM fools half the test set")
        axes[2].set_ylabel("clean accuracy (%)")
        axes[2].set_title("accuracy against robustness")
        fig.tight_layout()
        return to_data_uri(fig)
