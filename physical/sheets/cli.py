"""`physical print RUN`: write (or check) a run's sheets and say how many there are and where.

RUN is the run's pipeline YAML or its run directory (runs/NAME). With a YAML, the stages up to
print run as `physical run CONFIG --until print` would (generate included, when it has not run);
with a run directory, only the print stage, from the run's own config.yaml. The PDF is written
again when it is missing, when the sheet section of the config changed, or with --force.
"""
from __future__ import annotations

import time
from pathlib import Path


def _add(p):
    p.add_argument("run", help="the run's pipeline YAML, or its run directory (runs/NAME)")
    p.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")
    p.add_argument("--force", action="store_true", help="write the sheets again even when they are up to date")


def ensure_printed(run, cfg, force: bool = False) -> tuple[dict, bool]:
    """The run's print summary, writing the sheets first when needed; (summary, written)."""
    from ..config import to_dict
    from ..pipeline import _section_hash
    from . import print_stage

    want = _section_hash(to_dict(cfg), "print")
    st = run.status("print")
    fresh = (st.get("state") == "done" and st.get("config") == want and "scale_bar_mm" in st.get("summary", {})
             and (run.root / "print" / "sheets.pdf").is_file() and (run.root / "print" / "layout.json").is_file())
    if fresh and not force:
        return st["summary"], False
    if run.status("generate").get("state") != "done":
        raise FileNotFoundError(f"{run.root}: the generate stage has not finished; run "
                                "`physical print CONFIG` with the pipeline YAML (it generates first)")
    run.invalidate_from("print")
    run.mark("print", "running")
    t0 = time.time()
    summary = print_stage(run, cfg)
    run.mark("print", "done", seconds=round(time.time() - t0, 2), config=want, summary=summary)
    return summary, True


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
    from ..capture.cli import load_run
    from ..pipeline import run_pipeline

    path = Path(args.run)
    run, cfg = load_run(args.run, args.set)
    printed_now = False
    if path.is_file():  # a pipeline YAML: generate first where needed, as `physical run --until print`

        def log(line: str) -> None:
            nonlocal printed_now
            printed_now = printed_now or line.startswith("[print] done")
            if "already done" not in line:
                print(line)

        run = run_pipeline(cfg, until="print", log=log)
    elif not run.exists():
        raise FileNotFoundError(f"{run.manifest_path}: missing; not a run directory")
    summary, written = ensure_printed(run, cfg, args.force and not printed_now)
    print(("wrote the sheets\n" if written or printed_now else "")
          + describe(summary, run.run_id, cfg.run.name, args.run if path.is_file() else "CONFIG"))
    return 0


def register_cli(commands: dict) -> None:
    commands["print"] = ("write a run's sheets (PDF) and say how many there are and where", _add, _print)
