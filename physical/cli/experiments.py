"""Commands: `physical experiment digits [--out DIR]` and `physical compare RUN_A RUN_B`."""
from __future__ import annotations

import time

from physical.config import build, set_override
from physical.errors import ConfigError, UserError
from physical.log import say
from physical.experiments import DigitsConfig
from physical.report.compare import compare, load_report
from physical.experiments.digits import run_digits, write_digits_report


def add_experiment(p):
    p.add_argument("name", choices=["digits"], help="digits: training-side mitigations on scikit-learn's digits")
    p.add_argument("--out", default="runs/digits", help="folder for digits.json, digits.csv, digits.html "
                                                       "(default: runs/digits)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one setting of experiments.digits, e.g. --set l2=[0,0.1] (repeatable)")


def experiment_cmd(args) -> int:
    data: dict = {}
    for o in args.set or []:
        set_override(data, o)
    dc = build(DigitsConfig, data, "experiments.digits")
    if "enabled" in data:
        raise ConfigError("experiments.digits.enabled: not a setting of the stand-alone command")
    t0 = time.time()
    res = run_digits(dc)
    res["seconds"] = round(time.time() - t0, 2)
    paths = write_digits_report(res, args.out)
    say(digits_table(res))
    say(f"\nwrote {paths['json']} and {paths['html']} in {res['seconds']:.1f}s")
    return 0


def digits_table(res: dict) -> str:
    def pc(v):
        return "   -  " if v is None else f"{100 * v:5.1f}"

    head = (f"{'model':<18} {'clean %':>7} {'eps50':>6} {'err@eps50':>9} {'conf@eps50':>10} {'err@.25':>7} "
            f"{'conf@.25':>8}")
    lines = [head, "-" * len(head)]
    for r in res["rows"]:
        e50 = "  > 1" if r["eps50"] is None else f"{r['eps50']:6.3f}"
        lines.append(f"{r['model']:<18} {pc(r['clean_accuracy']):>7} {e50:>6} {pc(r['error_at_eps50']):>9} "
                     f"{pc(r['mistake_confidence_at_eps50']):>10} {pc(r['error_at_eps0.25']):>7} "
                     f"{pc(r['mistake_confidence_at_eps0.25']):>8}")
    for c in res.get("claims", []):
        lines.append(f"claim: {c['claim']}: {'holds' if c['holds'] else 'does not hold'} here ({c['evidence']})")
    return "\n".join(lines)


def add_compare(p):
    p.add_argument("run_a", help="run directory (or its report.json)")
    p.add_argument("run_b", help="run directory (or its report.json)")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="ignore differences up to this (fractions: 0.01 = 1 percentage point)")


def compare_cmd(args) -> int:
    if not args.threshold >= 0:
        raise UserError(f"--threshold {args.threshold:g}: must be >= 0 (0.01 = 1 percentage point)")
    text, _ = compare(load_report(args.run_a), load_report(args.run_b), args.threshold)
    say(text)
    return 0


def register_cli(commands: dict) -> None:
    commands["experiment"] = ("run a stand-alone experiment (digits: training-side mitigations)", add_experiment,
                              experiment_cmd)
    commands["compare"] = ("print the differences between two runs' tables", add_compare, compare_cmd)
