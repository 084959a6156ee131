"""`physical compare RUN_A RUN_B`: the differences between two runs' tables (report.json).

Every table (Kurakin's, and the experiments' when both runs have them) is flattened to one row per
key (e.g. model + attack label) with numeric values by dotted name; rows present in only one run
are listed, and values that differ by more than a threshold are printed with both figures and the
difference (fractions shown in percent / percentage points).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import KEYS


def load_report(path: str | Path) -> dict:
    """report.json of a run directory (or the file itself); UserError naming the file when it is not one."""
    import json

    from ..config import UserError

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
            return report
    raise FileNotFoundError(f"{path}: no report.json (run the pipeline's report stage first)")


def _flatten(obj: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("reference",):  # the paper's figures: the same in every run
                continue
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
    return not (n == "n" or n.startswith("n_") or "_n_" in n or n.endswith("_n") or n in ("eps", "strength", "seconds")
                or n.startswith("destruction_n") or n.endswith("seconds") or n.startswith("weight") or n == "l2"
                or n.startswith("eps50") or n == "random_draws")


def _fmt(v, frac: bool) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if frac else f"{v:g}"


def compare(a: dict, b: dict, threshold: float = 0.0) -> tuple[str, int]:
    """Text listing the differences between reports a and b; and how many differences there are."""
    ta, tb = tables(a), tables(b)
    lines = [f"A: {a.get('run_id')} ({a.get('name')})", f"B: {b.get('run_id')} ({b.get('name')})"]
    count = 0
    for name in list(dict.fromkeys([*ta, *tb])):
        ra, rb = ta.get(name, {}), tb.get(name, {})
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
                        diffs.append((" / ".join(map(str, key)), col, _fmt(x, frac), _fmt(y, frac), d))
            if diffs:
                w0 = max(len(d[0]) for d in diffs)
                w1 = max(len(d[1]) for d in diffs)
                out.append(f"  {'row':<{w0}}  {'value':<{w1}}  {'A':>8} {'B':>8} {'B - A':>8}")
                for d in diffs:
                    out.append(f"  {d[0]:<{w0}}  {d[1]:<{w1}}  {d[2]:>8} {d[3]:>8} {d[4]:>8}")
                count += len(diffs)
        lines.append(f"\n[{name}] " + ("no differences" if not out else f"{len(out)} line(s)"))
        lines.extend(out)
    lines.append(f"\n{count} difference(s); accuracies and rates in % (differences in percentage points)")
    return "\n".join(lines), count
