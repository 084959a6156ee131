"""`physical compare RUN_A RUN_B`: the differences between two runs' tables (report.json).

Every table (Kurakin's, and the experiments' when both runs have them) is flattened to one row per
key (e.g. model + attack label) with numeric values by dotted name; rows present in only one run
are listed, and values that differ by more than a threshold are printed with both figures and the
difference (fractions shown in percent / percentage points).

A difference of two rates is flagged as real (``*``) only when the statistics say so: for an
accuracy of Kurakin's table (average case) on images both runs classified (two attacks, two channels,
two models' runs on the same images), McNemar's paired test on those images (p < 0.05; it needs
each run's classify/predictions.json, found from the run directory); otherwise, when their 95 %
intervals do not overlap. A plain difference above ``threshold`` is still listed, unflagged.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from physical import runfiles
from physical.errors import UserError
from physical.measure.metrics import correct
from physical.measure.stats import intervals_apart, mcnemar
from physical.report.experiments import KEYS


def load_report(path: str | Path) -> dict:
    """report.json of a run directory (or the file itself); UserError naming the file when it is not one."""
    p = Path(path)
    for cand in (p, p / "report" / "report.json", p / "report.json"):
        if cand.is_file():
            try:
                report = json.loads(cand.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise UserError(f"{cand}: not a report (not JSON); give a run directory or its report/report.json") \
                    from None
            if not isinstance(report, dict) or not isinstance(report.get("kurakin"), list):
                raise UserError(f"{cand}: not a report of physical (no 'kurakin' table); give a run directory or its "
                                "report/report.json")
            report["_predictions"] = str(runfiles.path(cand.resolve().parent.parent, runfiles.PREDICTIONS))
            return report
    raise FileNotFoundError(f"{path}: no report.json (run the pipeline's report stage first)")


def _flatten(obj: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("reference", "k", "ci"):  # the paper's figures: the same in every run; k and the
                continue  # interval go with their rate
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, bool):
        pass
    elif isinstance(obj, (int, float)):
        out[prefix] = float(obj)
    elif obj is None:
        out[prefix] = None  # type: ignore[assignment]
    return out


def tables(report: dict) -> dict[str, dict[tuple, dict[str, float]]]:
    """table name -> row key -> {value name: number or None}."""
    out = {}
    for name, keys in KEYS.items():
        sec = report.get(name)
        rows = sec if isinstance(sec, list) else (sec or {}).get("rows")
        if not rows:
            continue
        t = {}
        for r in rows:
            key = tuple(r.get(k) for k in keys)
            t[key] = {k: v for k, v in _flatten(r).items() if k not in keys}
        out[name] = t
    return out


def _is_fraction(name: str) -> bool:
    n = name.rsplit(".", 1)[-1]
    return not (n in ("n", "k") or n.startswith("n_") or "_n_" in n or n.endswith("_n")
                or n in ("eps", "strength", "seconds")
                or n.startswith("destruction_n") or n.endswith("seconds") or n.startswith("weight") or n == "l2"
                or n.startswith("eps50") or n == "random_draws")


def _fmt(v, frac: bool) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if frac else f"{v:g}"


def _outcomes(report: dict) -> Optional[dict]:
    """(model, attack label) -> image -> record, from the run's classify/predictions.json; None when absent."""
    path = report.get("_predictions")
    if not path or not Path(path).is_file():
        return None
    out: dict = {}
    for r in runfiles.read_predictions(path).records:
        out.setdefault((r["model"], r["attack_label"]), {})[r["image"]] = r
    return out


def _rate_dict(row: Optional[dict], col: str) -> Optional[dict]:
    """The rate dict (with n and ci) a flattened column belongs to, e.g. average.accuracy.photo_adv.top1.acc."""
    node: Any = row
    for part in col.split(".")[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) and "ci" in node else None


def verdict(name: str, key: tuple, col: str, rows: tuple, outcomes: tuple) -> str:
    """Whether a difference of a rate is real: '* McNemar p ..' / 'McNemar p ..' (paired), '* intervals
    apart' / 'intervals overlap' (unpaired); '' for a value that is not a rate with an interval."""
    parts = col.split(".")
    if name == "kurakin" and len(parts) == 5 and parts[0] == "average" and parts[1] == "accuracy" \
            and all(o is not None for o in outcomes):
        cond, k = parts[2], int(parts[3][3:])
        ra, rb = (o.get(key, {}) for o in outcomes)
        images = [i for i in ra if i in rb]
        xa = [correct(ra[i]["pred"].get(cond), ra[i]["label"], k) for i in images]
        xb = [correct(rb[i]["pred"].get(cond), rb[i]["label"], k) for i in images]
        pairs = [(x, y) for x, y in zip(xa, xb, strict=False) if x is not None and y is not None]
        if pairs:
            t = mcnemar([x for x, _ in pairs], [y for _, y in pairs])
            return f"{'* ' if t['significant'] else ''}McNemar p {t['p']:.2g} (n {t['n']})"
    apart = intervals_apart(_rate_dict(rows[0], col), _rate_dict(rows[1], col))
    if apart is None:
        return ""
    return "* intervals apart" if apart else "intervals overlap"


def _raw_rows(report: dict, name: str) -> dict:
    sec = report.get(name)
    rows = sec if isinstance(sec, list) else (sec or {}).get("rows") or []
    return {tuple(r.get(k) for k in KEYS[name]): r for r in rows}


def compare(a: dict, b: dict, threshold: float = 0.0) -> tuple[str, int]:
    """Text listing the differences between reports a and b; and how many differences there are.
    Differences of rates that the statistics call real are flagged '*' (see the module's doc)."""
    ta, tb = tables(a), tables(b)
    outcomes = (_outcomes(a), _outcomes(b))
    lines = [f"A: {a.get('run_id')} ({a.get('name')})", f"B: {b.get('run_id')} ({b.get('name')})"]
    count = real = 0
    for name in list(dict.fromkeys([*ta, *tb])):
        ra, rb = ta.get(name, {}), tb.get(name, {})
        raw = (_raw_rows(a, name), _raw_rows(b, name))
        out = []
        if not ra or not rb:
            out.append(f"  only in {'A' if ra else 'B'} ({len(ra or rb)} rows)")
            count += 1
        else:
            for key in [k for k in ra if k not in rb]:
                out.append(f"  only in A: {' / '.join(map(str, key))}")
                count += 1
            for key in [k for k in rb if k not in ra]:
                out.append(f"  only in B: {' / '.join(map(str, key))}")
                count += 1
            diffs = []
            for key in [k for k in ra if k in rb]:
                va, vb = ra[key], rb[key]
                for col in list(dict.fromkeys([*va, *vb])):
                    x, y = va.get(col), vb.get(col)
                    if x is None and y is None:
                        continue
                    frac = _is_fraction(col)
                    if x is None or y is None or abs(x - y) > threshold:
                        d = "" if x is None or y is None else (f"{100 * (y - x):+.1f}" if frac else f"{y - x:+g}")
                        v = verdict(name, key, col, (raw[0].get(key), raw[1].get(key)), outcomes) if frac else ""
                        real += v.startswith("*")
                        diffs.append((" / ".join(map(str, key)), col, _fmt(x, frac), _fmt(y, frac), d, v))
            if diffs:
                w0 = max(len(d[0]) for d in diffs)
                w1 = max(len(d[1]) for d in diffs)
                out.append(f"  {'row':<{w0}}  {'value':<{w1}}  {'A':>8} {'B':>8} {'B - A':>8}  real?")
                for r in diffs:
                    out.append(f"  {r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]:>8} {r[3]:>8} {r[4]:>8}  {r[5]}".rstrip())
                count += len(diffs)
        lines.append(f"\n[{name}] " + ("no differences" if not out else f"{len(out)} line(s)"))
        lines.extend(out)
    lines.append(f"\n{count} difference(s), {real} of them real (*: McNemar's paired test on the same images, "
                 "p < 0.05, or 95 % intervals apart); accuracies and rates in % (differences in percentage points)")
    return "\n".join(lines), count
