"""`physical print RUN`: write (or check) a run's sheets and say how many there are and where.

RUN is the run's pipeline YAML or its run directory (runs/NAME). With a YAML, the stages up to
print run as `physical run CONFIG --until print` would (generate included, when it has not run);
with a run directory, only the print stage, from the run's own config.yaml. Both go through the
one stage runner (physical.runs.runner): the PDF is written again when it is missing or altered, when
what it reads changed, or with --force.
"""
from __future__ import annotations

from pathlib import Path

from physical.runs.pipeline import load_run
from physical.log import say
from physical.rundir import STAGES
from physical.runs.runner import run_stages


def _add(p):
    p.add_argument("run", help="the run's pipeline YAML, or its run directory (runs/NAME)")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")
    p.add_argument("--force", action="store_true", help="write the sheets again even when they are up to date")


def describe(summary: dict, run_id: str, name: str, target: str) -> str:
    s = summary
    lines = [
        f"run {name} ({run_id}): {s['sheets']} sheet{'s' if s['sheets'] != 1 else ''} ({s['paper']}), "
        f"{s['cells']} cells of {s['cell_mm']:g} mm, up to {s['cells_per_sheet']} per sheet",
        f"  PDF: {s['pdf']}",
        f"  copy for the printer: {s['prints']}",
        f"Print at 100 % / actual size (not 'fit to page'): the scale bar at the top of every sheet must "
        f"measure {s['scale_bar_mm']:g} mm.",
        "Then photograph the sheets (any names, any order, several sheets per photo are fine), put the "
        "photos in a folder and go on with:",
        f"  physical run {target} --from capture --set capture.source=PHOTO_FOLDER",
    ]
    return "\n".join(lines)


def _print(args) -> int:
    path = Path(args.run)
    run, cfg = load_run(args.run, args.set)
    ran = []

    def log(line: str) -> None:
        if line.startswith("[print] done"):
            ran.append(True)
        if "already done" not in line:
            say(line)

    if path.is_file():  # a pipeline YAML: generate first where needed, as `physical run --until print`
        run = run_stages(cfg, STAGES[:STAGES.index("print") + 1], redo=("print",) if args.force else (), log=log,
                         command="physical print", target=args.run)
    else:  # a run directory: only the print stage, from the run's own config.yaml
        if not run.exists():
            raise FileNotFoundError(f"{run.manifest_path}: missing; not a run directory")
        run = run_stages(cfg, ["print"], run=run, redo=("print",) if args.force else (), log=log,
                         command="physical print", target=args.run, check_earlier_inputs=False)
    summary = run.status("print")["summary"]
    say(("wrote the sheets\n" if ran else "")
        + describe(summary, run.run_id, cfg.run.name, args.run if path.is_file() else "CONFIG"))
    return 0


def register_cli(commands: dict) -> None:
    commands["print"] = ("write a run's sheets (PDF) and say how many there are and where", _add, _print)
